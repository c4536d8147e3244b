"""The surrogate chain against the real encoder on the bundled clips."""

import jax.numpy as jnp
import numpy as np
import pytest

from oneadapt_jax import cli, data, fidelity


@pytest.mark.parametrize("clip", [pytest.param("bikes", marks=pytest.mark.slow), "carphone"])
def test_surrogate_bytes_rank_real_bytes_over_resolution_and_qp(clip):
  frames = data.clip_segments(clip)[0].frames[:5]
  result = fidelity.clip_fidelity(frames, clip=clip, qp_rungs=(0, 5, 10, 15), fps_rungs=(2, 4),
                                  preset="veryfast", progress=False)
  assert result.spearman_res_qp >= 0.9, fidelity.format_table([result])
  # The surrogate's d(bytes)/d(setting) must point the way the encoder's bytes move.
  for knob, agreement in result.sign_agreement.items():
    assert agreement >= 0.9, (knob, fidelity.format_table([result]))
  assert result.psnr_mean > 24.0
  a, b = result.calibration
  assert result.median_error_calibrated < 0.35
  knob = fidelity.calibrated(fidelity.surrogate_chain(), a, b)
  setting = {k: jnp.float32(1.0) for k in ("resolution", "frame_rate", "qp")}
  full = next(p for p in result.points if p["rungs"] == (5, 4, 15))
  estimate = float(knob.cost(setting, jnp.asarray(frames.astype(np.float32) / 255)))
  assert estimate == pytest.approx(full["real_bytes"], rel=0.6)


def test_fidelity_cli_writes_table_and_plot(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(fidelity, "DEFAULT_QP_RUNGS", (0, 15))
  monkeypatch.setattr(fidelity, "DEFAULT_FPS_RUNGS", (4,))
  assert cli.main(["fidelity", "--clips", "carphone", "--out", str(tmp_path), "--preset",
                   "ultrafast", "--no-progress"]) == 0
  assert (tmp_path / "fidelity.png").stat().st_size > 10_000
  assert "carphone" in capsys.readouterr().out
  assert cli.main(["fidelity", "--clips", "carphone", "--segment", "99", "--out",
                   str(tmp_path), "--no-progress"]) == 2
