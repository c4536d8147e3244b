"""Resolution: soft, anti-aliased resampling differentiable in a continuous scale factor."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base

# Heights 180, 240, 360, 480, 540 and 720 of a 720p source: the common rungs of a streaming ladder.
DEFAULT_SCALES = (0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 0.75, 1.0)


def _triangle(x: jax.Array) -> jax.Array:
  return jnp.maximum(0.0, 1.0 - jnp.abs(x))


def _normalise_rows(weights: jax.Array) -> jax.Array:
  total = jnp.sum(weights, axis=-1, keepdims=True)
  safe = jnp.where(total > 0, total, 1.0)
  return jnp.where(total > 0, weights / safe, 0.0)


def resample_matrix(size: int, scale: jax.Array) -> jax.Array:
  """The `[size, size]` operator that downscales one axis by `scale` and upscales it back.

  The down pass is an anti-aliased triangle filter of width `1 / scale` (so nothing shimmers as
  the factor moves); the up pass is linear interpolation. The downscaled signal has a
  continuous length `scale * size`: its last sample is weighted by how much of it lies inside,
  which keeps the operator continuous (and differentiable almost everywhere) in `scale`.

  Args:
    size: the axis length (static).
    scale: a float scalar in `(0, 1]`.

  Returns:
    `A` with `resampled = A @ signal` along the axis; every row sums to one.
  """
  dtype = scale.dtype
  inv = 1.0 / scale
  pixels = jnp.arange(size, dtype=dtype)
  # Downscaled sample j sits at (j + 0.5) / scale - 0.5 in input coordinates.
  centres = (pixels + 0.5) * inv - 0.5
  down = _normalise_rows(_triangle((pixels[None, :] - centres[:, None]) * scale))
  inside = jnp.clip(scale * size - pixels, 0.0, 1.0)
  # Output pixel i reads the downscaled signal at (i + 0.5) * scale - 0.5.
  positions = (pixels + 0.5) * scale - 0.5
  up = _normalise_rows(_triangle(positions[:, None] - pixels[None, :]) * inside[None, :])
  return up @ down


def resolution(
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    round_rule: str = "up",
) -> _base.Knob:
  """Resolution knob: downscale by a continuous factor, then upscale back to the input size.

  The analytics side sees what a low-resolution stream looks like once resized to the DNN's
  input: `apply` keeps the frame size, and the detail above the scale's Nyquist limit is gone.
  The setting maps piecewise-linearly onto `scales` (setting 0 -> `scales[0]`, 1 -> `scales[-1]`).

  Cost: pixels sent per call, `T * (s * H) * (s * W)` summed over leading batch axes (unit
  ``"pixels"``; `knobs.scale_cost` turns it into a bytes estimate at a bits-per-pixel rate).

  Example:
    >>> import jax, jax.numpy as jnp, knobs
    >>> knob = knobs.resolution()
    >>> frames = jnp.full((2, 36, 48, 3), 0.5)
    >>> knob.apply(jnp.float32(0.4), frames).shape
    (2, 36, 48, 3)
    >>> float(knob.cost(jnp.float32(1.0), frames))
    3456.0

  Args:
    scales: the discrete scale factors, cheapest first, each in `(0, 1]`.
    round_rule: `"up"` (more expensive neighbour, the paper's rule) or `"nearest"`.

  Returns:
    A `Knob` with a scalar setting.
  """
  values = _base.ladder(scales, name="resolution")
  if values[0] <= 0 or values[-1] > 1 or values[-1] < values[0]:
    raise ValueError(f"resolution: scales must increase within (0, 1], got {tuple(scales)}")

  def to_physical(setting):
    return _base.ladder_to_physical(values, setting)

  @jax.jit
  def _apply(setting, frames):
    scale = to_physical(_base.as_setting(setting, frames.dtype))
    height, width = frames.shape[-3], frames.shape[-2]
    rows = resample_matrix(height, scale)
    cols = resample_matrix(width, scale)
    out = jnp.einsum("ah,...thwc->...tawc", rows, frames)
    return jnp.einsum("bw,...tawc->...tabc", cols, out)

  @jax.jit
  def _cost(setting, frames):
    scale = to_physical(_base.as_setting(setting, frames.dtype))
    t, h, w = frames.shape[-4:-1]
    count = int(np.prod(frames.shape[:-4], dtype=np.int64)) * t
    return count * (scale * h) * (scale * w)

  def apply(setting, frames):
    _base.check_setting(setting, name="resolution")
    _base.check_video(frames, channels=None)
    return _apply(setting, frames)

  def cost(setting, frames):
    _base.check_setting(setting, name="resolution")
    _base.check_video(frames, channels=None)
    return _cost(setting, frames)

  return _base.Knob(
      init=lambda: jnp.ones((), jnp.float32),
      apply=apply,
      cost=cost,
      values=values,
      to_physical=to_physical,
      round=lambda setting: _base.ladder_round(len(values), setting, rule=round_rule),
      name="resolution",
      unit="pixels",
  )
