"""How well the differentiable surrogates track the real encoder.

Over a grid of discrete settings (resolution x QP x frame rate) on real clips, each point is
encoded with x264 (`codec.encode`) and pushed through the surrogate chain
`resolution -> frame_rate -> quantization` (whose bytes the quantization knob counts). Reported
per clip:

- Spearman rank correlation between the surrogate's bytes and the real bytes (raw and over the
  resolution x QP plane at full frame rate, the one the tests hold to >= 0.9);
- PSNR of the surrogate's output against the real decoded frames;
- for each knob, how often the sign of the surrogate's d(bytes)/d(setting) agrees with the
  encoder's finite difference to the next rung;
- a calibration `bytes = a * estimate ** b` (least squares in log space) and its median error,
  which `calibrated` applies so that `cost` is in real bytes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

import knobs
from oneadapt_jax import codec, data

DEFAULT_QP_RUNGS = (0, 3, 6, 9, 12, 15)  # indices into the QP ladder 50 .. 20: QP 50, 44, ..., 20
DEFAULT_FPS_RUNGS = (1, 3, 4)  # 2, 5 and 10 fps of a 10 fps segment


def surrogate_chain() -> knobs.Knob:
  """The chain whose bytes the fidelity table checks: the video workload's (only quantization
  counts bytes)."""
  from oneadapt_jax.workloads.video import knob_chain

  return knob_chain()


def calibrated(knob: knobs.Knob, scale: float, exponent: float) -> knobs.Knob:
  """`knob` with its cost mapped to real bytes: `scale * cost ** exponent` (still differentiable)."""
  if not (scale > 0 and exponent > 0):
    raise ValueError(f"calibration needs scale > 0 and exponent > 0, got {scale}, {exponent}")

  def cost(setting, frames):
    return scale * jnp.maximum(knob.cost(setting, frames), 1e-6) ** exponent

  return knob._replace(cost=cost, unit="bytes")


@dataclasses.dataclass
class ClipFidelity:
  clip: str
  points: list[dict]
  spearman: float
  spearman_res_qp: float
  psnr_mean: float
  psnr_min: float
  sign_agreement: dict[str, float]
  calibration: tuple[float, float]
  median_error_calibrated: float


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
  return 10 * np.log10(1.0 / max(mse, 1e-12))


def clip_fidelity(frames: np.ndarray, *, clip: str = "", qp_rungs: Sequence[int] | None = None,
                  fps_rungs: Sequence[int] | None = None, preset: str = "medium",
                  progress: bool = True) -> ClipFidelity:
  """Compares surrogate and x264 on one `uint8 [T, H, W, 3]` segment at 10 fps.

  `qp_rungs` and `fps_rungs` default to `DEFAULT_QP_RUNGS` and `DEFAULT_FPS_RUNGS`.
  """
  qp_rungs = DEFAULT_QP_RUNGS if qp_rungs is None else qp_rungs
  fps_rungs = DEFAULT_FPS_RUNGS if fps_rungs is None else fps_rungs
  knob = surrogate_chain()
  ladders = knob.values
  sizes = {name: len(v) for name, v in ladders.items()}
  x = jnp.asarray(frames.astype(np.float32) / 255.0)
  # One program for both: XLA shares the chain's stages between the frames and the bytes.
  apply_and_cost = jax.jit(lambda setting, frames: (knob.apply(setting, frames),
                                                    knob.cost(setting, frames)))
  cost_grad = jax.jit(jax.grad(knob.cost))  # only where the sign is compared
  res_rungs = range(sizes["resolution"])
  grid = list(itertools.product(res_rungs, fps_rungs, qp_rungs))
  points, real_bytes = [], {}
  for i, f, q in tqdm(grid, desc=f"fidelity {clip}", disable=not progress):
    setting = {"resolution": i / (sizes["resolution"] - 1), "frame_rate": f / (sizes["frame_rate"] - 1),
               "qp": q / (sizes["qp"] - 1)}
    encoded = codec.encode(frames, resolution=float(ladders["resolution"][i]),
                           qp=float(ladders["qp"][q]), fps=float(ladders["frame_rate"][f]),
                           preset=preset)
    as_array = {k: jnp.float32(v) for k, v in setting.items()}
    surrogate, estimate = apply_and_cost(as_array, x)
    surrogate = np.asarray(surrogate)
    real_bytes[(i, f, q)] = encoded.num_bytes
    points.append({
        "resolution": float(ladders["resolution"][i]), "fps": float(ladders["frame_rate"][f]),
        "qp": float(ladders["qp"][q]), "rungs": (i, f, q), "real_bytes": encoded.num_bytes,
        "estimated_bytes": float(estimate), "psnr_vs_real": _psnr(surrogate, encoded.as_float())})

  # Sign agreement: the surrogate's derivative between two rungs against the encoder's difference.
  agree = {"resolution": [], "frame_rate": [], "qp": []}
  rung_lists = {"resolution": list(res_rungs), "frame_rate": list(fps_rungs), "qp": list(qp_rungs)}
  for (i, f, q) in grid:
    here = {"resolution": i, "frame_rate": f, "qp": q}
    for name, rungs in rung_lists.items():
      position = rungs.index(here[name])
      if position + 1 == len(rungs):
        continue
      nxt = dict(here, **{name: rungs[position + 1]})
      real_diff = real_bytes[(nxt["resolution"], nxt["frame_rate"], nxt["qp"])] - \
          real_bytes[(i, f, q)]
      middle = {k: jnp.float32(here[k] / (sizes[k] - 1)) for k in here}
      middle[name] = jnp.float32((here[name] + nxt[name]) / 2 / (sizes[name] - 1))
      grad = cost_grad(middle, x)
      agree[name].append(np.sign(float(grad[name])) == np.sign(real_diff))

  real = np.array([p["real_bytes"] for p in points], np.float64)
  est = np.array([p["estimated_bytes"] for p in points], np.float64)
  exponent, log_scale = np.polyfit(np.log(est), np.log(real), 1)
  fitted = np.exp(log_scale) * est ** exponent
  full_rate = [k for k, p in enumerate(points) if p["rungs"][1] == max(fps_rungs)]
  psnrs = [p["psnr_vs_real"] for p in points]
  return ClipFidelity(
      clip=clip, points=points,
      spearman=float(spearmanr(real, est).statistic),
      spearman_res_qp=float(spearmanr(real[full_rate], est[full_rate]).statistic),
      psnr_mean=float(np.mean(psnrs)), psnr_min=float(np.min(psnrs)),
      sign_agreement={k: float(np.mean(v)) for k, v in agree.items() if v},
      calibration=(float(np.exp(log_scale)), float(exponent)),
      median_error_calibrated=float(np.median(np.abs(fitted / real - 1))))


def format_table(results: Sequence[ClipFidelity]) -> str:
  header = (f"{'clip':<14}{'points':>7}{'Spearman':>10}{'res x QP':>10}{'PSNR':>7}{'min':>7}"
            f"{'sign res':>10}{'sign fps':>10}{'sign QP':>9}{'a':>9}{'b':>6}{'med err':>9}")
  lines = [header, "-" * len(header)]
  for r in results:
    s = r.sign_agreement
    lines.append(
        f"{r.clip:<14}{len(r.points):>7}{r.spearman:>10.3f}{r.spearman_res_qp:>10.3f}"
        f"{r.psnr_mean:>7.1f}{r.psnr_min:>7.1f}{s.get('resolution', np.nan):>10.0%}"
        f"{s.get('frame_rate', np.nan):>10.0%}{s.get('qp', np.nan):>9.0%}"
        f"{r.calibration[0]:>9.3g}{r.calibration[1]:>6.2f}{r.median_error_calibrated:>9.0%}")
  return "\n".join(lines)


def save_plot(path: pathlib.Path, results: Sequence[ClipFidelity]) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker

  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.3), squeeze=False)
  for ax, r in zip(axes[0], results):
    real = np.array([p["real_bytes"] for p in r.points])
    est = np.array([p["estimated_bytes"] for p in r.points])
    qp = np.array([p["qp"] for p in r.points])
    shown = ax.scatter(est, real, c=qp, cmap="viridis_r", s=18)
    line = np.geomspace(est.min(), est.max(), 50)
    a, b = r.calibration
    ax.plot(line, a * line ** b, "k--", lw=1, label=f"bytes = {a:.3g} est^{b:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="surrogate bytes estimate", ylabel="x264 bytes",
           title=f"{r.clip}: Spearman {r.spearman:.3f}, PSNR vs x264 {r.psnr_mean:.1f} dB")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    fig.colorbar(shown, ax=ax, label="QP")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main_fidelity(out_dir: pathlib.Path, *, clips: Sequence[str] = ("bikes", "carphone"),
                  segment_index: int = 0, preset: str = "medium", progress: bool = True) -> list:
  """Runs the table on one segment of each clip; writes `fidelity.json` and `fidelity.png`."""
  out_dir.mkdir(parents=True, exist_ok=True)
  results = []
  for clip in clips:
    segments = data.clip_segments(clip)
    if not 0 <= segment_index < len(segments):
      raise ValueError(f"{clip} has {len(segments)} segments; --segment {segment_index} is out of range")
    results.append(clip_fidelity(segments[segment_index].frames, clip=clip, preset=preset,
                                 progress=progress))
  print(format_table(results))
  save_plot(out_dir / "fidelity.png", results)
  (out_dir / "fidelity.json").write_text(json.dumps(
      [dataclasses.asdict(r) for r in results], indent=2, default=float))
  print(f"\nwrote {out_dir / 'fidelity.png'} and {out_dir / 'fidelity.json'}")
  return results
