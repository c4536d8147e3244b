"""The knob gallery (`oneadapt gallery`), on a small clip."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from oneadapt_jax import cli, gallery


def test_gallery_rows_are_consistent():
  frames = gallery.pan_clip(data.astronaut(), num_frames=4, size=64)
  rows, pictures, maps = gallery.run_gallery(frames, settings=(0.0, 1.0), progress=False)
  assert len(rows) == 10 and set(pictures) == {r.knob for r in rows}
  by_knob = {}
  for r in rows:
    by_knob.setdefault(r.knob, []).append(r)
  for name, (low, high) in by_knob.items():
    assert low.cost < high.cost, name
    assert low.fidelity <= high.fidelity + 1e-6, name
    assert np.isfinite([low.cost_grad, high.cost_grad, low.fidelity_grad, high.fidelity_grad]).all()
  # Best quality of a knob that keeps every frame and pixel is lossless.
  assert by_knob["resolution"][1].fidelity == pytest.approx(1.0, abs=1e-4)
  assert maps["roi_quality"].shape == (4, 4)


@pytest.mark.slow  # 15 s on 2 cores; the rows above are checked in `make test`
def test_gallery_cli_writes_png_and_json(tmp_path, capsys):
  assert cli.main(["gallery", "--frames", "3", "--size", "48", "--out", str(tmp_path),
                   "--no-progress"]) == 0
  summary = json.loads((tmp_path / "gallery.json").read_text())
  assert len(summary["rows"]) == 25
  with Image.open(tmp_path / "gallery.png") as png:
    assert png.size[0] > 500 and png.size[1] > 500
  assert "dSSIM/ds" in capsys.readouterr().out


def test_gallery_cli_reports_bad_options(tmp_path, capsys):
  assert cli.main(["gallery", "--frames", "50", "--out", str(tmp_path), "--no-progress"]) == 2
  assert "num_frames" in capsys.readouterr().err
