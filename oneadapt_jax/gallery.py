"""The knob gallery: every knob at several settings on a real image, with its cost and gradients.

A short clip is cut from a real photograph (scikit-image's astronaut) by panning a window across
it, so the temporal knobs have real motion to act on. For each knob and setting the gallery
records the frame the analytics side would see, the knob's cost, and two gradients from one
`jax.vjp` each: of the cost, and of a fidelity stand-in for accuracy (SSIM against the original
frames, via dm_pix) until the real DNNs of `models` take its place.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import knobs

DEFAULT_SETTINGS = (0.0, 0.25, 0.5, 0.75, 1.0)


# A camera that drifts by a pixel and now and then jumps: the frame filter has both
# near-duplicates to drop and real changes to send.
PAN_STEPS = (1, 12, 0, 1, 16, 1, 10, 0, 1, 14, 1, 0)


def pan_clip(image: np.ndarray, *, num_frames: int = 8, size: int = 256) -> np.ndarray:
  """Cuts `[T, size, size, 3]` float32 frames from `image` by a diagonal pan (`PAN_STEPS`)."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"pan_clip needs an RGB image [H, W, 3], got shape {image.shape}")
  if not 1 <= num_frames <= len(PAN_STEPS) + 1:
    raise ValueError(f"pan_clip: num_frames must be in 1..{len(PAN_STEPS) + 1}, got {num_frames}")
  offsets = np.concatenate([[0], np.cumsum(PAN_STEPS[:num_frames - 1])]).astype(int)
  reach = size + offsets[-1]
  if image.shape[0] < reach or image.shape[1] < reach:
    raise ValueError(f"image {image.shape[:2]} is too small for a {num_frames}-frame pan of {size}")
  frames = [image[o:o + size, o:o + size] for o in offsets]
  frames = np.stack(frames)
  if frames.dtype == np.uint8:
    return frames.astype(np.float32) / 255.0
  return frames.astype(np.float32)


def gallery_knobs(frame_size: tuple[int, int]) -> dict[str, knobs.Knob]:
  """The five video knobs with their default ladders."""
  return {
      "resolution": knobs.resolution(),
      "frame_rate": knobs.frame_rate(),
      "quantization": knobs.quantization(),
      "roi_quality": knobs.roi_quality(frame_size),
      "frame_filter": knobs.frame_filter(),
  }


def fidelity(frames: jax.Array, reference: jax.Array) -> jax.Array:
  """Mean SSIM of `[..., T, H, W, 3]` frames against the reference: a stand-in accuracy proxy."""
  # dm_pix mixes int32 and float internally, which strict promotion (our tests') rejects.
  with jax.numpy_dtype_promotion("standard"):
    return jnp.mean(pix.ssim(frames, reference))


@dataclasses.dataclass
class GalleryRow:
  knob: str
  setting: float
  physical: float
  unit: str
  cost: float
  cost_grad: float
  fidelity: float
  fidelity_grad: float


def roi_setting(knob: knobs.Knob, level: float) -> jax.Array:
  """A quality map at `level` with the central third of the blocks (the RoI) at best quality."""
  grid = knob.init().shape
  setting = np.full(grid, level, np.float32)
  rows, cols = grid
  setting[rows // 3: rows - rows // 3, cols // 3: cols - cols // 3] = 1.0
  return jnp.asarray(setting)


def run_gallery(
    frames: np.ndarray,
    *,
    settings: Sequence[float] = DEFAULT_SETTINGS,
    show_frame: int = -1,
    progress: bool = True,
) -> tuple[list[GalleryRow], dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
  """Applies every knob at every setting.

  Args:
    frames: `[T, H, W, 3]` float32 in `[0, 1]`.
    settings: the settings to show (scalar knobs; the RoI knob uses them outside its RoI).
    show_frame: which frame of the clip to keep as the picture.
    progress: show a progress bar.

  Returns:
    The table rows, the pictures per knob, and per-block fidelity gradients of the RoI knob.
  """
  knobs.check_video(frames)
  reference = jnp.asarray(frames)
  rows: list[GalleryRow] = []
  pictures: dict[str, list[np.ndarray]] = {}
  maps: dict[str, np.ndarray] = {}
  catalogue = gallery_knobs(frames.shape[1:3])
  bar = tqdm(total=len(catalogue) * len(settings), desc="knob gallery", disable=not progress)
  for name, knob in catalogue.items():
    pictures[name] = []

    def objective(setting, knob=knob):
      out = knob.apply(setting, reference)
      return fidelity(out, reference), out

    for level in settings:
      setting = roi_setting(knob, level) if name == "roi_quality" else jnp.float32(level)
      (value, out), grad = jax.value_and_grad(objective, has_aux=True)(setting)
      cost, cost_grad = jax.value_and_grad(knob.cost)(setting, reference)
      physical = knob.to_physical(jnp.float32(level))
      rows.append(GalleryRow(
          knob=name,
          setting=float(level),
          physical=float(physical),
          unit=knob.unit,
          cost=float(cost),
          cost_grad=float(jnp.sum(cost_grad)),
          fidelity=float(value),
          fidelity_grad=float(jnp.sum(grad)),
      ))
      pictures[name].append(np.asarray(out[show_frame]))
      if name == "roi_quality" and level == settings[len(settings) // 2]:
        maps[name] = np.asarray(grad)
      bar.update()
  bar.close()
  return rows, pictures, maps


def format_table(rows: Sequence[GalleryRow]) -> str:
  """A fixed-width text table of the gallery rows."""
  header = (f"{'knob':<13}{'setting':>8}{'physical':>10}{'cost':>13} {'unit':<7}"
            f"{'dcost/ds':>13}{'SSIM':>8}{'dSSIM/ds':>11}")
  lines = [header, "-" * len(header)]
  for r in rows:
    lines.append(
        f"{r.knob:<13}{r.setting:>8.2f}{r.physical:>10.3g}{r.cost:>13.5g} {r.unit:<7}"
        f"{r.cost_grad:>13.4g}{r.fidelity:>8.4f}{r.fidelity_grad:>11.4g}")
  return "\n".join(lines)


def save_gallery_png(
    path: pathlib.Path,
    rows: Sequence[GalleryRow],
    pictures: dict[str, list[np.ndarray]],
    maps: dict[str, np.ndarray],
) -> None:
  """Writes the knob x setting grid (plus the RoI gradient map) as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = list(pictures)
  cols = max(len(v) for v in pictures.values()) + (1 if maps else 0)
  fig, axes = plt.subplots(len(names), cols, figsize=(2.3 * cols, 2.5 * len(names)), squeeze=False)
  by_knob = {name: [r for r in rows if r.knob == name] for name in names}
  for i, name in enumerate(names):
    for j, picture in enumerate(pictures[name]):
      ax = axes[i, j]
      ax.imshow(np.clip(picture, 0, 1))
      r = by_knob[name][j]
      ax.set_title(f"s={r.setting:.2f} ({r.physical:.3g})\ncost {r.cost:.3g} {r.unit}\n"
                   f"SSIM {r.fidelity:.3f}", fontsize=7)
      ax.set_xticks([])
      ax.set_yticks([])
      if j == 0:
        ax.set_ylabel(name, fontsize=9)
    for j in range(len(pictures[name]), cols):
      axes[i, j].axis("off")
  if maps:
    ax = axes[names.index("roi_quality"), cols - 1]
    ax.axis("on")
    grad = maps["roi_quality"]
    shown = ax.imshow(grad, cmap="magma")
    ax.set_title("dSSIM / d(block setting)\n(RoI knob, outside RoI s=0.5)", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, fraction=0.046)
  fig.suptitle("oneadapt-jax knob gallery: last frame of a panning clip cut from the astronaut "
               "(RoI row: centre blocks at best quality)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main_gallery(out_dir: pathlib.Path, *, num_frames: int = 8, size: int = 256,
                 progress: bool = True) -> dict:
  """Runs the gallery on the astronaut and writes `gallery.png` and `gallery.json` to `out_dir`."""
  from skimage import data

  out_dir.mkdir(parents=True, exist_ok=True)
  frames = pan_clip(data.astronaut(), num_frames=num_frames, size=size)
  rows, pictures, maps = run_gallery(frames, progress=progress)
  table = format_table(rows)
  save_gallery_png(out_dir / "gallery.png", rows, pictures, maps)
  summary = {
      "clip": {"source": "skimage.data.astronaut", "frames": num_frames, "size": size},
      "device": str(jax.devices()[0]),
      "rows": [dataclasses.asdict(r) for r in rows],
  }
  (out_dir / "gallery.json").write_text(json.dumps(summary, indent=2))
  print(table)
  print(f"\nwrote {out_dir / 'gallery.png'} and {out_dir / 'gallery.json'}")
  return summary
