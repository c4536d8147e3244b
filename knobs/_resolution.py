"""Resolution: band-limited resampling, differentiable in a continuous scale factor.

Downscaling a frame to `s H x s W` with an ideal anti-aliasing filter and upscaling it back with
ideal interpolation keeps exactly the spatial frequencies the small grid can hold: it is a
low-pass filter with cutoff `s` times the Nyquist limit. This knob applies that filter in the
DCT domain (symmetric extension, so no wrap-around at the borders) with a raised-cosine roll-off.
Unlike resampling on a pixel grid, no sample positions move as `s` changes, so neither the
output nor its gradient shimmers: d(output)/ds is the detail gained at the cutoff, not the
image's spatial gradient times a sliding sample position (which swamped the trend, measured by
`oneadapt fidelity`). Against a real area-downscale + bilinear-upscale (swscale) on bikes the
output is within 39-45 dB PSNR at scales 0.25-0.75.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base, _codec

# Heights 180, 240, 360, 480, 540 and 720 of a 720p source: the common rungs of a streaming ladder.
DEFAULT_SCALES = (0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 0.75, 1.0)


def lowpass_mask(size: int, scale: jax.Array, *, rolloff: float) -> jax.Array:
  """DCT-domain gain `[size]` of resampling one axis to `scale * size` samples and back.

  A signal of `scale * size` samples represents DCT frequencies `k < scale * size` (the
  Nyquist limit of the smaller grid). The gain is 1 below, 0 above, with a raised-cosine roll-off
  over `[scale (1 - rolloff), scale (1 + rolloff)] * size`, so it is smooth in `scale`.
  """
  dtype = scale.dtype
  frequency = jnp.arange(size, dtype=dtype) / size  # 1.0 is the full grid's Nyquist limit
  low, high = scale * (1.0 - rolloff), scale * (1.0 + rolloff)
  position = jnp.clip((frequency - low) / (high - low), 0.0, 1.0)
  return 0.5 + 0.5 * jnp.cos(jnp.pi * position)


def _dct(x: jax.Array) -> jax.Array:
  """The unnormalised DCT-II of `x` along its last axis (length `n`), through one real FFT of
  length `n` (Makhoul 1980), in interleaved order: `C[k]` at `2k` and `C[n - k]` at `2k + 1`,
  for `k = 0 .. n // 2` (`C[n]` reads 0), `2 (n // 2 + 1)` values.

  The even samples, then the odd ones reversed, make a sequence whose DFT `V` gives
  `C[k] = Re(exp(-i pi k / 2n) V[k])` and `C[n - k] = -Im(exp(-i pi k / 2n) V[k])`.
  jax.scipy's `dct` takes a complex FFT of the whole axis and, along any axis but the last,
  transposes around it: the knob's filter was 2.3 times slower with it at 720p
  (benchmarks/RESULTS.md). Both orderings are single fused passes: the samples' as a gather
  (`_reorder`), the coefficients' pairs stacked on a new minor axis. Concatenated along the
  axis, each was a copy of its own (XLA's CPU backend does not fuse a concatenation there).
  """
  n = x.shape[-1]
  spectrum = jnp.fft.rfft(_reorder(x), axis=-1)
  cos, sin = _twiddles(n, x.dtype, x.ndim)
  re, im = spectrum.real, spectrum.imag
  pairs = jnp.stack([re * cos + im * sin, re * sin - im * cos], axis=-1)
  return pairs.reshape(*pairs.shape[:-2], -1)


def _idct(coefficients: jax.Array, n: int) -> jax.Array:
  """The inverse of `_dct` (interleaved order in, `n` samples out): the rotation by the
  twiddles is its own inverse, then one inverse real FFT and the samples put back in order.

  The pairs come apart by `lax.split`, whose transpose is a stack, one fused pass; strided
  slices transposed into two pads and their sum, two passes."""
  pairs = coefficients.reshape(*coefficients.shape[:-1], -1, 2)
  low, high = (half[..., 0] for half in jax.lax.split(pairs, (1, 1), axis=-1))
  cos, sin = _twiddles(n, coefficients.dtype, coefficients.ndim)
  v = jnp.fft.irfft(jax.lax.complex(cos * low + sin * high, sin * low - cos * high), n=n, axis=-1)
  even, odd = v[..., :(n + 1) // 2], v[..., (n + 1) // 2:][..., ::-1]
  if n % 2:
    odd = jnp.pad(odd, [(0, 0)] * (odd.ndim - 1) + [(0, 1)])
  return jnp.stack([even, odd], axis=-1).reshape(*v.shape[:-1], -1)[..., :n]


def _order(n: int) -> np.ndarray:
  """Makhoul's order of `n` samples: the even ones, then the odd ones reversed."""
  return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)[::-1]]).astype(np.int32)


def _reorder_slices(x: jax.Array) -> jax.Array:
  return jnp.concatenate([x[..., ::2], x[..., 1::2][..., ::-1]], axis=-1)


@jax.custom_jvp
def _reorder(x: jax.Array) -> jax.Array:
  """`x` along its last axis in `_order`: one gather, fused into the pass that makes `x`.

  The tangent is the same permutation written as slices and a concatenation: their transpose
  (pads and a sum, fused) is what the backward pass runs, where the gather's, a scatter, was
  8 times slower (one transform's `vjp` at 720p, 530 against 62 ms; benchmarks/RESULTS.md)."""
  return jnp.take(x, _order(x.shape[-1]), axis=-1, unique_indices=True, mode="clip")


@_reorder.defjvp
def _reorder_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return _reorder(x), _reorder_slices(t)


def _twiddles(n: int, dtype, ndim: int) -> tuple[jax.Array, jax.Array]:
  """`cos` and `sin` of `pi k / 2n`, `k = 0 .. n // 2`, shaped to broadcast along the last axis."""
  angle = (np.pi * np.arange(n // 2 + 1) / (2 * n)).reshape((1,) * (ndim - 1) + (-1,))
  return jnp.asarray(np.cos(angle), dtype), jnp.asarray(np.sin(angle), dtype)


def _halves_gain(mask: jax.Array) -> jax.Array:
  """A DCT-domain gain `[n]` in halves order: `mask[k]` for `k = 0 .. n // 2`, then
  `mask[n - k]` for the same `k` (0 for `k = 0`, where `C[n]` is always 0)."""
  n = mask.shape[0]
  high = jnp.concatenate([jnp.zeros((1,), mask.dtype), mask[n - np.arange(1, n // 2 + 1)]])
  return jnp.concatenate([mask[:n // 2 + 1], high])


def _interleaved(n: int) -> np.ndarray:
  """For each position of `_dct`'s interleaved order, its position in halves order."""
  k = np.arange(2 * (n // 2 + 1))
  return np.where(k % 2 == 0, k // 2, n // 2 + 1 + k // 2).astype(np.int32)


def _gain(mask_h: jax.Array, mask_w: jax.Array) -> jax.Array:
  """The separable gain `[W', H']` on `_dct`'s interleaved coefficients of both axes.

  It is formed in halves order and moved to the interleaved one by a single gather over the
  flattened grid, so its backward pass sums the setting's gradient in the same order as the
  filter did before the interleaved order (the same bits; the controller's choices at a rung
  boundary follow float rounding, benchmarks/RESULTS.md)."""
  gain = _halves_gain(mask_w).reshape(-1, 1) * _halves_gain(mask_h).reshape(1, -1)
  w, h = _interleaved(mask_w.shape[0]), _interleaved(mask_h.shape[0])
  flat = (w[:, None] * gain.shape[1] + h[None, :]).reshape(-1)
  return jnp.take(gain.reshape(-1), flat, unique_indices=True, mode="clip").reshape(
      len(w), len(h))


def lowpass(frames: jax.Array, mask_h: jax.Array, mask_w: jax.Array, *,
            channel_axis: int = -1) -> jax.Array:
  """The separable DCT-domain low-pass of `[..., H, W, C]` frames (`[..., C, H, W]` with
  `channel_axis=-3`): `idct(mask * dct)` along both axes (orthonormal DCT-II, symmetric
  extension; the normalisation cancels).

  Both forward transforms come first, then the gains, then both inverse ones. The gains are
  all that depends on the setting, so the backward pass in the setting is two transforms of
  the cotangent (filtering one axis, then the other, put a forward transform on that path too;
  benchmarks/RESULTS.md). Each transform runs along the minor axis: channels last move in front
  of the plane, which is transposed between the axes (XLA's CPU FFT runs several times slower
  off the minor axis).
  """
  h, w = _base.frame_size(frames, channel_axis)
  planes = jnp.moveaxis(frames, -1, -3) if channel_axis == -1 else frames  # [..., C, H, W]
  spectrum = _dct(jnp.swapaxes(_dct(planes), -1, -2))                     # [..., C, W', H']
  gain = _gain(mask_h, mask_w)
  gain = gain.reshape((1,) * (spectrum.ndim - 2) + gain.shape)
  out = _idct(jnp.swapaxes(_idct(spectrum * gain, h), -1, -2), w)         # [..., C, H, W]
  return jnp.moveaxis(out, -3, -1) if channel_axis == -1 else out


def _fold(coefficients: jax.Array, n: int) -> jax.Array:
  """`_dct`'s interleaved coefficients of `n` samples (`n` even, last axis) -> coefficients
  whose `_idct` at `n / 2` is the sums of the sample pairs `(2m, 2m + 1)` (twice their means;
  along both axes, 4 times the 2x2 means).

  Averaging samples 2m and 2m + 1 of the length-`n` DCT-II basis at frequency `k` gives the
  length-`n / 2` basis at `k` scaled by `cos(pi k / 2n)`, and the frequency `n - k` folds onto
  `k` with `-sin(pi k / 2n)`: so the pooled signal's coefficients are `D[k] = cos C[k] -
  sin C[n - k]`, one elementwise step on `_dct`'s pairs, then put in the half length's
  interleaved order (`D[j]` at `2j`, `D[m - j]` at `2j + 1`, `m = n / 2`)."""
  pairs = coefficients.reshape(*coefficients.shape[:-1], -1, 2)  # C[k], C[n - k]
  cos, sin = _twiddles(n, coefficients.dtype, coefficients.ndim)
  folded = pairs[..., 0] * cos - pairs[..., 1] * sin             # D[k], k = 0 .. n / 2
  m = n // 2
  low = folded[..., :m // 2 + 1]
  high = jnp.concatenate([jnp.zeros_like(folded[..., :1]),
                          jnp.take(folded, m - np.arange(1, m // 2 + 1), axis=-1)], axis=-1)
  return jnp.stack([low, high], axis=-1).reshape(*folded.shape[:-1], -1)


def lowpass_pooled(planes: jax.Array, mask_h: jax.Array, mask_w: jax.Array) -> jax.Array:
  """`lowpass` of planes `[..., H, W]` (`H` and `W` even), then each 2x2 block's mean:
  `[..., H / 2, W / 2]`, through inverse transforms at half size each way (`_fold`), a quarter
  of the full-size inverse's work. Exact (to float rounding): the test checks it against the
  low-pass then pooled."""
  h, w = planes.shape[-2:]
  if h % 2 or w % 2:
    raise ValueError(f"lowpass_pooled: the planes' size must be even, got {h}x{w}")
  spectrum = _dct(jnp.swapaxes(_dct(planes), -1, -2))                     # [..., W', H']
  gain = _gain(mask_h, mask_w)
  spectrum = spectrum * gain.reshape((1,) * (spectrum.ndim - 2) + gain.shape)
  spectrum = jnp.swapaxes(_fold(jnp.swapaxes(_fold(spectrum, h), -1, -2), w), -1, -2)
  return 0.25 * _idct(jnp.swapaxes(_idct(spectrum, h // 2), -1, -2), w // 2)


def resolution(
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    rolloff: float = 0.15,
    round_rule: str = "up",
) -> _base.Knob:
  """Resolution knob: downscale by a continuous factor, then upscale back to the input size.

  The analytics side sees what a low-resolution stream looks like once resized to the DNN's
  input: `apply` keeps the frame size, and the detail above the scale's Nyquist limit is gone
  (band-limited resampling, see the module docstring). At scale 1 the output is the input.
  The setting maps piecewise-linearly onto `scales` (setting 0 -> `scales[0]`, 1 -> `scales[-1]`).

  Cost: pixels sent per call, `T * (s * H) * (s * W)` summed over leading batch axes (unit
  ``"pixels"``; `knobs.scale_cost` turns it into a bytes estimate at a bits-per-pixel rate).

  Channels first: `apply` and `cost` take `channel_axis=-3` for frames `[..., T, C, H, W]`
  (the output in the same layout; why a chain would: README, "The knobs").

  4:2:0 out: `apply(..., ycbcr420=True)` returns the output as a `knobs.YCbCr420` (what a
  scaler writing yuv420p holds, each plane clipped to 8-bit range instead of the RGB pixels),
  for a `frame_rate` and a `quantization` that take it: its chroma is filtered and pooled in one
  (`lowpass_pooled`), about three quarters of the time of filtering RGB at 720p, value and
  `vjp` (benchmarks/RESULTS.md). Equal to `knobs.ycbcr420` of the RGB output wherever neither
  clips.

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
    rolloff: half-width of the roll-off band relative to the cutoff.
    round_rule: `"up"` (more expensive neighbour, the paper's rule) or `"nearest"`.

  Returns:
    A `Knob` with a scalar setting.
  """
  values = _base.ladder(scales, name="resolution")
  if values[0] <= 0 or values[-1] > 1 or values[-1] < values[0]:
    raise ValueError(f"resolution: scales must increase within (0, 1], got {tuple(scales)}")
  if not 0 < rolloff < 1:
    raise ValueError(f"resolution: rolloff must be in (0, 1), got {rolloff}")

  def to_physical(setting):
    return _base.ladder_to_physical(values, setting)

  def _scale_and_masks(setting, frames, channel_axis):
    scale = to_physical(_base.as_setting(setting, frames.dtype))
    h, w = _base.frame_size(frames, channel_axis)
    return scale, lowpass_mask(h, scale, rolloff=rolloff), lowpass_mask(w, scale, rolloff=rolloff)

  def _untouched_at_full(scale, out, untouched):
    # Full resolution is the untouched stream (`untouched()`); its gradient still comes from the
    # roll-off band, so the ascent can leave s = 1 (where every setting starts). A conditional,
    # not the blend `out + stop_gradient(full * (frames - out))` of the same values: the blend
    # read the frames again in the filter's last pass and in its backward pass, about a fifth of
    # the filter's `vjp` at 720p (benchmarks/RESULTS.md). Under `vmap` over settings the
    # conditional is that blend again, as a select.
    return jax.lax.cond(scale >= 1.0, lambda o: o + jax.lax.stop_gradient(untouched() - o),
                        lambda o: o, out)

  @functools.partial(jax.jit, static_argnums=2)
  def _apply(setting, frames, channel_axis):
    scale, mask_h, mask_w = _scale_and_masks(setting, frames, channel_axis)
    out = lowpass(frames, mask_h, mask_w, channel_axis=channel_axis)
    # The ideal filter rings a little at hard edges; a real scaler writes 8-bit pixels.
    return jnp.clip(_untouched_at_full(scale, out, lambda: frames), 0.0, 1.0)

  @functools.partial(jax.jit, static_argnums=2)
  def _apply_ycbcr420(setting, frames, channel_axis):
    scale, mask_h, mask_w = _scale_and_masks(setting, frames, channel_axis)
    y, cb, cr = _codec.ycbcr_planes(frames, channel_axis)
    y = y[..., None, :, :]
    luma = _untouched_at_full(scale, lowpass(y, mask_h, mask_w, channel_axis=-3), lambda: y)
    chroma = jnp.stack([cb, cr], axis=-3)
    chroma = _untouched_at_full(scale, lowpass_pooled(chroma, mask_h, mask_w),
                                lambda: _codec._pool2(chroma))
    # What a scaler writing yuv420p keeps: each 8-bit plane clipped.
    return _codec.YCbCr420(jnp.clip(luma, 0.0, 1.0),
                           jnp.clip(chroma + _codec.CHROMA_CENTRE, 0.0, 1.0))

  @functools.partial(jax.jit, static_argnums=2)
  def _cost(setting, frames, channel_axis):
    scale = to_physical(_base.as_setting(setting, frames.dtype))
    t, (h, w) = frames.shape[-4], _base.frame_size(frames, channel_axis)
    count = int(np.prod(frames.shape[:-4], dtype=np.int64)) * t
    return count * (scale * h) * (scale * w)

  def apply(setting, frames, *, channel_axis=-1, ycbcr420=False):
    _base.check_setting(setting, name="resolution")
    if not ycbcr420:
      _base.check_video(frames, channels=None, channel_axis=channel_axis)
      return _apply(setting, frames, channel_axis)
    _base.check_video(frames, channel_axis=channel_axis)
    h, w = _base.frame_size(frames, channel_axis)
    if h % 2 or w % 2:
      raise ValueError(f"resolution: ycbcr420=True needs an even frame size (4:2:0 chroma), got "
                       f"{h}x{w}")
    return _apply_ycbcr420(setting, frames, channel_axis)

  def cost(setting, frames, *, channel_axis=-1):
    _base.check_setting(setting, name="resolution")
    _base.check_video(frames, channels=None, channel_axis=channel_axis)
    return _cost(setting, frames, channel_axis)

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
