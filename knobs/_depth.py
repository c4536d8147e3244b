"""Depth quantization: the bits per pixel a depth camera sends.

Depth video is `float32 [..., T, H, W, 1]` in `[0, 1]`: the range along the optical axis over
the sensor's maximum range, `0` where the sensor had no return. A sender keeps `b` bits of each
pixel: the code `round(d (2^b - 1))`, which a lossless coder (FFV1) then packs; the server reads
`code / (2^b - 1)`. No return stays `0` at every depth of quantization.

The cost is a differentiable estimate of the lossless coder's bits (unit ``"bits"``). FFV1
predicts each pixel from its left, top and top-left neighbours (the median predictor of
LOCO-I) and codes the residual with adaptive codes, about `PIXEL_FLOOR + log2(1 + |residual|)`
bits a pixel. A frame that only repeats the one before (a frame rate's held frame) is not sent,
so each frame counts the cheaper of its spatial estimate and the bits of its difference from the
frame before. In a chain after a resolution and a frame rate, the bytes of the whole stream
are a product of the three (`depth_stream_bytes`); the tests compare that with FFV1's real
bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base


def check_depth(frames) -> None:
  """Raises a `ValueError` naming the problem unless `frames` is depth video `[..., T, H, W, 1]`
  in `[0, 1]`."""
  _base.check_video(frames, name="depth frames", channels=1)


def depth_codes(depth, bits):
  """The `b`-bit codes of depth in `[0, 1]`: `round(d (2^b - 1))` (NumPy or JAX alike; `bits`
  may be continuous, as the knob's setting between rungs is)."""
  xp = jnp if isinstance(depth, jax.Array) or isinstance(bits, jax.Array) else np
  levels = xp.exp2(xp.round(bits)) - 1.0 if xp is np else depth_levels(bits)
  return xp.round(xp.clip(depth, 0.0, 1.0) * levels), levels


#: Bits a pixel the coder spends besides `log2(1 + |residual|)` (measured against FFV1 on the
#: depth stream: 1.3 bits a pixel at 4 bits, where residuals are mostly 0).
PIXEL_FLOOR = 1.0


def depth_levels(bits):
  """`2^b - 1`, the largest code at `b` bits (JAX): exact on the rungs in value, `2^b - 1` in
  gradient everywhere."""
  # On a rung the level count must be exact (XLA's float32 exp2(16) is a hair off 65536), and a
  # rung's float32 interpolation lands a hair off the integer; the exact value carries no
  # gradient (it is a function of round(b)), so it is applied straight through.
  smooth = jnp.exp2(bits) - 1.0
  whole = jnp.round(bits)
  exact = jnp.ldexp(jnp.ones_like(bits), whole.astype(jnp.int32)) - 1.0
  return smooth + jax.lax.stop_gradient(jnp.where(jnp.abs(bits - whole) < 1e-3, exact, smooth)
                                        - smooth)


def median_residual(codes):
  """LOCO-I's (and FFV1's) prediction residual of each pixel, `[..., H, W, C]`: the pixel less
  the median of its left, top and `left + top - top-left` neighbours (outside the picture: 0)."""
  pad = [(0, 0)] * (codes.ndim - 3) + [(1, 0), (1, 0), (0, 0)]
  padded = jnp.pad(codes, pad)
  left, top, corner = padded[..., 1:, :-1, :], padded[..., :-1, 1:, :], padded[..., :-1, :-1, :]
  gradient = left + top - corner
  prediction = jnp.maximum(jnp.minimum(left, top), jnp.minimum(jnp.maximum(left, top), gradient))
  return codes - prediction


def coded_bits(codes):
  """The cost's estimate of a lossless coder's bits for `codes [..., T, H, W, C]` (see the
  module docstring), summed over every axis."""
  spatial = jnp.sum(PIXEL_FLOOR + jnp.log2(1.0 + jnp.abs(median_residual(codes))),
                    axis=(-3, -2, -1))
  previous = jnp.concatenate([jnp.zeros_like(codes[..., :1, :, :, :]), codes[..., :-1, :, :, :]],
                             axis=-4)
  temporal = jnp.sum(jnp.log2(1.0 + jnp.abs(codes - previous)), axis=(-3, -2, -1))
  return jnp.sum(jnp.minimum(spatial, temporal))


def depth_quantization(
    *,
    bits: Sequence[float] = (4, 6, 8, 10, 12, 16),
    round_rule: str = "up",
) -> _base.Knob:
  """Depth-quantization knob: `b` bits a pixel, with a straight-through rounding.

  Backward: identity in the depth; in the setting, the rounding error scales with the step
  `1 / (2^b - 1)`, so `d out / d b = -ln 2 * 2^b / (2^b - 1) * (rounding error)`.

  Cost: the estimated bits of the segment's codes (module docstring), unit ``"bits"``.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> knob = knobs.depth_quantization()
    >>> knob.apply(jnp.float32(0.0), jnp.asarray([0.0, 0.1, 0.5]).reshape(1, 1, 3, 1)).ravel()
    Array([0.        , 0.13333334, 0.53333336], dtype=float32)

  Args:
    bits: the discrete bits per pixel, cheapest first (2 to 16).
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(bits, name="depth_quantization")
  if values[0] < 2 or values[-1] > 16 or np.any(np.diff(values) < 0):
    raise ValueError(f"depth_quantization: bits must increase within 2..16, got {tuple(bits)}")

  def bits_of(setting, dtype):
    return _base.ladder_to_physical(values, _base.as_setting(setting, dtype))

  @jax.jit
  def apply(setting, depth):
    codes, levels = depth_codes(depth, bits_of(setting, depth.dtype))
    error = jax.lax.stop_gradient(codes / levels - depth)
    step = 1.0 / levels
    return depth + error * (step / jax.lax.stop_gradient(step))

  @jax.jit
  def cost(setting, depth):
    levels = depth_levels(bits_of(setting, depth.dtype))
    # The codes without their rounding: the same bits in expectation, and a gradient in b.
    return coded_bits(jnp.clip(depth, 0.0, 1.0) * levels)

  return _base.ladder_knob(values, apply, cost, check=check_depth, name="depth_quantization",
                           unit="bits", round_rule=round_rule)


#: FFV1's bytes a frame besides its pixels' (headers and slice contexts; measured on the depth
#: stream of `oneadapt_jax.depth`).
FRAME_OVERHEAD = 60.0


def depth_stream_bytes(resolution: _base.Knob, frame_rate: _base.Knob,
                       quantization: _base.Knob):
  """A depth chain's cost (`chain._replace(cost=...)`): FFV1's bytes of a segment, a product of
  the three knobs (a sum of members' costs, what `chain` gives, cannot be),

      frames sent x (FRAME_OVERHEAD + (s H) (s W) x bits a pixel / 8),

  with the frames sent the frame rate's own count, `s` the scale, and the bits a pixel
  `PIXEL_FLOOR + mean log2(1 + |r| / s)` over the median-prediction residual `r` of the frames
  at `b` bits (`depth_quantization`): a coded pixel's neighbours lie `1 / s` pixels apart,
  so its residual is about the full-size one over `s`. The residual is taken on the frames as
  they come, not low-passed: the band-limited low-pass rings at the edges of no-return regions
  (a jump of tens of metres), which made the estimate fall as the resolution rose towards 1."""
  def cost(setting, frames):
    scale = resolution.to_physical(_base.as_setting(setting["resolution"], frames.dtype))
    sent = frame_rate.cost(setting["frame_rate"], frames)
    levels = depth_levels(quantization.to_physical(
        _base.as_setting(setting["depth_quantization"], frames.dtype)))
    residual = median_residual(jnp.clip(frames, 0.0, 1.0) * levels) / scale
    bits = PIXEL_FLOOR + jnp.mean(jnp.log2(1.0 + jnp.abs(residual)))
    pixels = scale**2 * frames.shape[-3] * frames.shape[-2]
    return sent * (FRAME_OVERHEAD + pixels * bits / 8.0)
  return cost
