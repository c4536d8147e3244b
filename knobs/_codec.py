"""Codec-like knobs: block-DCT quantization with a straight-through rounding, per frame or per
macroblock, and a differentiable estimate of the bits the quantized coefficients cost.

The transform is what intra coding in JPEG and H.264 share: full-range BT.601 YCbCr
(optionally 4:2:0 chroma), an orthonormal 8x8 DCT-II per block, division by a quantization step,
rounding, and the inverse. Frames are padded (edge replication) to whole 16x16 macroblocks and
cropped back, so any frame size works.

Steps: H.264 style, `Qstep(QP) = 0.625 * 2 ** (QP / 6)` on the 0..255 scale (the step doubles
every 6 QP), the same for every coefficient; or JPEG style, the standard luminance/chrominance
tables of ITU T.81 Annex K scaled by the IJG quality formula (what libjpeg and Pillow use).

Rate model: each quantized coefficient costs `2 * log2(1 + |c| / step)` bits (close to the
length of an Exp-Golomb / JPEG Huffman code for its magnitude, and smooth in the step). For a
frame after the first, each 8x8 block costs the lesser of coding it alone and coding its
difference to the same block in the previous frame (zero-motion prediction), so a frame that a
frame-rate knob repeated costs almost nothing, as it does in a real codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base

BLOCK = 8
MACROBLOCK = 16
DEFAULT_QPS = tuple(range(50, 19, -2))  # cheapest first: QP 50, 48, ..., 20
DEFAULT_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

JPEG_LUMA = np.array(
    [[16, 11, 10, 16, 24, 40, 51, 61],
     [12, 12, 14, 19, 26, 58, 60, 55],
     [14, 13, 16, 24, 40, 57, 69, 56],
     [14, 17, 22, 29, 51, 87, 80, 62],
     [18, 22, 37, 56, 68, 109, 103, 77],
     [24, 35, 55, 64, 81, 104, 113, 92],
     [49, 64, 78, 87, 103, 121, 120, 101],
     [72, 92, 95, 98, 112, 100, 103, 99]], np.float64)
JPEG_CHROMA = np.full((8, 8), 99.0)
JPEG_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114],
     [-0.168735892, -0.331264108, 0.5],
     [0.5, -0.418687589, -0.081312411]])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_BITS_PER_LEVEL = 2.0
_SMOOTH_LEVEL = 0.05  # in quantization levels: |level| is smoothed below about this


def dct_matrix(n: int = BLOCK) -> np.ndarray:
  """The orthonormal DCT-II matrix `M` (`coefficients = M @ block @ M.T`); JPEG's FDCT."""
  k = np.arange(n)
  m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
  m[0] /= np.sqrt(2.0)
  return m


def h264_qstep(qp: jax.Array) -> jax.Array:
  """H.264's quantization step for a (continuous) QP, on the 0..255 pixel scale."""
  return 0.625 * jnp.exp2(qp / 6.0)


def jpeg_tables(quality: jax.Array) -> tuple[jax.Array, jax.Array]:
  """IJG quality (1..100, continuous) -> luma and chroma step tables `[..., 8, 8]`.

  The value is libjpeg's integer table (`floor((T * S + 50) / 100)` clipped to 1..255, S the
  IJG scale); the gradient is that of the unfloored expression.
  """
  quality = jnp.clip(quality, 1.0, 100.0)
  scale = jnp.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)
  tables = []
  for base in (JPEG_LUMA, JPEG_CHROMA):
    exact = (jnp.asarray(base, quality.dtype) * scale[..., None, None] + 50.0) / 100.0
    tables.append(jnp.clip(_base.straight_through(exact, jnp.floor(exact)), 1.0, 255.0))
  return tables[0], tables[1]


def _to_blocks(plane: jax.Array) -> jax.Array:
  """`[..., H, W]` (multiples of 8) -> `[..., H/8, 8, W/8, 8]`."""
  *lead, h, w = plane.shape
  return plane.reshape(*lead, h // BLOCK, BLOCK, w // BLOCK, BLOCK)


def _from_blocks(blocks: jax.Array) -> jax.Array:
  *lead, hb, _, wb, _ = blocks.shape
  return blocks.reshape(*lead, hb * BLOCK, wb * BLOCK)


def _pool2(plane: jax.Array) -> jax.Array:
  *lead, h, w = plane.shape
  return plane.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def _upsample2(plane: jax.Array) -> jax.Array:
  """2x linear ("fancy", 3/4-1/4 triangle) upsampling, what libjpeg's decoder does: output
  `2k` is `3/4 x[k] + 1/4 x[k - 1]`, `2k + 1` is `3/4 x[k] + 1/4 x[k + 1]`, the edge repeated.

  `jax.image.resize(method="linear", antialias=False)` to float rounding (the test), written as
  two shifted sums: resize contracts each axis with a dense `[2n, n]` weight matrix
  (benchmarks/RESULTS.md)."""
  return _upsample2_axis(_upsample2_axis(plane, -1), -2)


def _upsample2_axis(x: jax.Array, axis: int) -> jax.Array:
  n = x.shape[axis]
  first, last = (jax.lax.slice_in_dim(x, i, i + 1, axis=axis) for i in (0, n - 1))
  before = jnp.concatenate([first, jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
  after = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis), last], axis=axis)
  pairs = jnp.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], axis=axis)
  shape = list(x.shape)
  shape[axis] *= 2
  return pairs.reshape(shape)


def _expand_map(step_map: jax.Array, factor: int, rank: int) -> jax.Array:
  """Per-macroblock `[..., Bh, Bw]` map -> per-8x8-block `[..., Bh*f, 1, Bw*f, 1]` of `rank`.

  A `[..., 1, 1]` map is one step for every block and stays `[..., 1, 1, 1, 1]`: broadcast to
  the macroblock grid, its gradient was a reduction to the grid first."""
  if step_map.shape[-2:] == (1, 1):
    grown = step_map.reshape(*step_map.shape[:-2], 1, 1, 1, 1)
    return grown.reshape((1,) * (rank - grown.ndim) + grown.shape)
  grown = jnp.repeat(jnp.repeat(step_map, factor, axis=-2), factor, axis=-1)
  *lead, hb, wb = grown.shape
  grown = grown.reshape(*lead, hb, 1, wb, 1)
  return grown.reshape((1,) * (rank - grown.ndim) + grown.shape)


def _code_plane(plane, step_map, table, factor):
  """Quantizes one plane `[..., T, H, W]` (0..255 scale, level-shifted).

  Args:
    plane: the plane, `H` and `W` multiples of 8.
    step_map: per-macroblock step multipliers `[..., Bh, Bw]` (`[..., 1, 1]`: one for all).
    table: `[8, 8]` per-coefficient steps.
    factor: 8x8 blocks per macroblock side in this plane (2 for luma, 1 for 4:2:0 chroma).

  Returns:
    The reconstructed plane and the bits per 8x8 block `[..., T, H/8, W/8]`.
  """
  dct = jnp.asarray(dct_matrix(), plane.dtype)
  blocks = _to_blocks(plane)
  coef = jnp.einsum("uk,...akbl,vl->...aubv", dct, blocks, dct)
  steps = _expand_map(step_map, factor, coef.ndim)
  steps = steps * table.reshape((1,) * (coef.ndim - 4) + (1, BLOCK, 1, BLOCK))
  levels = coef / steps
  quantized = _base.straight_through(levels, jnp.round(levels)) * steps
  recon = _from_blocks(jnp.einsum("uk,...aubv,vl->...akbl", dct, quantized, dct))

  def block_bits(lv):
    # A smooth |lv|: a held frame differs from its original by float noise only, and the sign of
    # that noise must not decide the gradient (it did, and vmap rounded differently).
    magnitude = jnp.sqrt(lv * lv + _SMOOTH_LEVEL**2) - _SMOOTH_LEVEL
    return _BITS_PER_LEVEL * jnp.sum(jnp.log2(1.0 + magnitude), axis=(-3, -1))

  intra = block_bits(levels)
  if levels.shape[-5] > 1:  # the time axis sits before the block axes
    inter = block_bits(levels[..., 1:, :, :, :, :] - levels[..., :-1, :, :, :, :])
    rest = jnp.minimum(intra[..., 1:, :, :], inter)
    bits = jnp.concatenate([intra[..., :1, :, :], rest], axis=-3)
  else:
    bits = intra
  return recon, bits


def _convert(matrix: np.ndarray, planes: list[jax.Array]) -> list[jax.Array]:
  """The colour matrix applied to three planes, as sums of scaled planes: XLA fuses them into
  one loop, where an einsum over a channel axis of 3 ran as a dot (0.2 s of a 720p camera step)."""
  return [sum(float(matrix[i, j]) * planes[j] for j in range(3)) for i in range(3)]


class YCbCr420(NamedTuple):
  """Video as an 8-bit 4:2:0 frame holds it (yuv420p, full range), in `[0, 1]`: the planes a
  scaler writes and an encoder codes. The video chain's stages can pass it along instead of
  RGB (`resolution`'s `ycbcr420=True`, then `frame_rate`, then `quantization`, which decodes
  it back to RGB), so the chroma is filtered and coded at the size the codec reads it.

  Attributes:
    luma: `[..., T, 1, H, W]`, BT.601 Y.
    chroma: `[..., T, 2, H / 2, W / 2]`, Cb and Cr averaged over 2x2 pixels, centred at 0.5.
  """

  luma: jax.Array
  chroma: jax.Array

  @property
  def dtype(self):
    return self.luma.dtype


def ycbcr420(frames: jax.Array, *, channel_axis: int = -1) -> YCbCr420:
  """RGB frames `[..., T, H, W, 3]` (`[..., T, 3, H, W]` with `channel_axis=-3`), `H` and `W`
  even, as a `YCbCr420`: the conversion and 2x2 averaging `quantization` applies to RGB.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> planes = knobs.ycbcr420(jnp.full((2, 4, 6, 3), 0.5))
    >>> planes.luma.shape, planes.chroma.shape
    ((2, 1, 4, 6), (2, 2, 2, 3))
  """
  _base.check_video(frames, channel_axis=channel_axis)
  h, w = _base.frame_size(frames, channel_axis)
  if h % 2 or w % 2:
    raise ValueError(f"ycbcr420: 4:2:0 needs an even frame size, got {h}x{w}")
  y, cb, cr = ycbcr_planes(frames, channel_axis)
  return YCbCr420(y[..., None, :, :],
                  jnp.stack([_pool2(cb), _pool2(cr)], axis=-3) + CHROMA_CENTRE)


#: Where `YCbCr420` centres its chroma (on the 0..1 scale; 8-bit video stores 128).
CHROMA_CENTRE = 0.5


def ycbcr_planes(frames: jax.Array, channel_axis: int = -1) -> list[jax.Array]:
  """The Y, Cb and Cr planes `[..., T, H, W]` of RGB frames in `[0, 1]` (chroma centred at 0)."""
  if channel_axis == -1:
    rgb = [frames[..., j] for j in range(3)]
  else:
    rgb = [frames[..., j, :, :] for j in range(3)]
  return _convert(_RGB_TO_YCBCR, rgb)


def check_ycbcr420(planes: Any, *, name: str = "frames", macroblocks: bool = True
                   ) -> tuple[int, int]:
  """Raises a `ValueError` naming the problem if `planes` is not a `YCbCr420` (with
  `macroblocks`, one the codec can code as it lies: whole 16x16 macroblocks); returns the frame
  size `(H, W)`."""
  _base.check_video(planes.luma, name=f"{name}.luma", channels=1, channel_axis=-3)
  h, w = _base.frame_size(planes.luma, -3)
  expected = (*planes.luma.shape[:-3], 2, h // 2, w // 2)
  if tuple(planes.chroma.shape) != expected:
    raise ValueError(f"{name}.chroma must be {expected} for luma {tuple(planes.luma.shape)}, "
                     f"got {tuple(planes.chroma.shape)}")
  _base.check_video(planes.chroma, name=f"{name}.chroma", channels=2, channel_axis=-3)
  if macroblocks and (h % MACROBLOCK or w % MACROBLOCK):
    raise ValueError(f"{name}: a YCbCr420 stream is coded as it lies, in whole {MACROBLOCK}x"
                     f"{MACROBLOCK} macroblocks; got {h}x{w} (pass RGB frames, which are padded)")
  return h, w


def _code_frames(frames, step_map, tables, *, chroma_subsampling: bool, channel_axis: int = -1):
  """Codes `[..., T, H, W, 3]` frames (`[..., T, 3, H, W]` with `channel_axis=-3`), or a
  `YCbCr420` as it lies; returns (reconstruction in [0, 1], RGB in the layout of
  `channel_axis`, and the total bits)."""
  if isinstance(frames, YCbCr420):
    if not chroma_subsampling:
      raise ValueError("quantization: a YCbCr420 stream has 4:2:0 chroma; this knob codes "
                       "chroma at full size (chroma_subsampling=False)")
    h, w = frames.luma.shape[-2:]
    ycc = [frames.luma[..., 0, :, :] * 255.0 - 128.0,
           *((frames.chroma[..., j, :, :] - CHROMA_CENTRE) * 255.0 for j in range(2))]
    return _code_ycc(ycc, step_map, tables, True, (h, w), channel_axis)
  h, w = _base.frame_size(frames, channel_axis)
  ph, pw = -h % MACROBLOCK, -w % MACROBLOCK
  spatial = [(0, ph), (0, pw), (0, 0)] if channel_axis == -1 else [(0, 0), (0, ph), (0, pw)]
  pad = [(0, 0)] * (frames.ndim - 3) + spatial
  # Edge padding's backward pass adds slices even at zero widths: skip it where none is needed.
  padded = (jnp.pad(frames, pad, mode="edge") if ph or pw else frames) * 255.0
  # The planes as they lie: channels first, no transposition of the segment, forward or backward
  ycc = ycbcr_planes(padded, channel_axis)
  ycc[0] = ycc[0] - 128.0
  if chroma_subsampling:
    ycc[1:] = [_pool2(plane) for plane in ycc[1:]]
  return _code_ycc(ycc, step_map, tables, chroma_subsampling, (h, w), channel_axis)


def _code_ycc(ycc, step_map, tables, subsampled, size, channel_axis):
  """Codes Y, Cb and Cr planes on the 0..255 scale, level-shifted (chroma at half size where
  `subsampled`); returns the RGB reconstruction cropped to `size` in [0, 1] and the bits."""
  luma_table, chroma_table = tables
  planes, total_bits = [], 0.0
  for channel, plane in enumerate(ycc):
    table = luma_table if channel == 0 else chroma_table
    if channel > 0 and subsampled:
      recon, bits = _code_plane(plane, step_map, table, 1)
      recon = _upsample2(recon)
    else:
      recon, bits = _code_plane(plane, step_map, table, MACROBLOCK // BLOCK)
    planes.append(recon)
    total_bits = total_bits + jnp.sum(bits)
  planes[0] = planes[0] + 128.0
  rgb = jnp.stack(_convert(_YCBCR_TO_RGB, planes), axis=channel_axis) / 255.0
  # A real decoder writes 8-bit pixels, so its output is clipped to [0, 1] as well.
  h, w = size
  rgb = rgb[..., :h, :w, :] if channel_axis == -1 else rgb[..., :h, :w]
  return jnp.clip(rgb, 0.0, 1.0), total_bits


def _check_mode(mode: str) -> None:
  if mode not in ("h264", "jpeg"):
    raise ValueError(f"quantization: mode must be 'h264' or 'jpeg', got {mode!r}")


def _steps_for(mode: str, physical: jax.Array):
  """Physical values (QP or quality) -> (step multiplier map, (luma, chroma) tables)."""
  if mode == "h264":
    ones = jnp.ones((BLOCK, BLOCK), physical.dtype)
    return h264_qstep(physical), (ones, ones)
  luma, chroma = jpeg_tables(physical)
  return jnp.ones_like(physical), (luma, chroma)


def quantization(
    *,
    mode: str = "h264",
    values: Sequence[float] | None = None,
    chroma_subsampling: bool = True,
    round_rule: str = "up",
) -> _base.Knob:
  """Quantization knob: a codec-like block-DCT transform at one quality for the whole segment.

  Forward: the coefficients are really rounded (the output is a genuinely quantized stream);
  backward: straight-through, so the gradient with respect to the step is the rounding error
  each coefficient makes, which the DNN's gradient then weighs.

  Cost: a differentiable estimate of the bytes of the quantized coefficients (unit
  ``"bytes"``; headers excluded), summed over the frames and leading batch axes.

  Channels first: `apply` and `cost` take `channel_axis=-3` for frames `[..., T, C, H, W]`
  (the output in the same layout; why a chain would: README, "The knobs").

  4:2:0 in: `apply` and `cost` also take a `knobs.YCbCr420` in whole 16x16 macroblocks, coded as
  it lies (what RGB frames are coded as after their conversion and 2x2 averaging); `apply`
  returns the decoded RGB in the layout `channel_axis` names.

  Example:
    >>> import jax, jax.numpy as jnp, knobs
    >>> knob = knobs.quantization()                        # H.264 QP 50 ... 20
    >>> frames = jax.random.uniform(jax.random.key(0), (2, 20, 30, 3))
    >>> float(knob.to_physical(jnp.float32(0.0)))
    50.0
    >>> knob.apply(jnp.float32(0.5), frames).shape
    (2, 20, 30, 3)

  Args:
    mode: `"h264"` (setting -> QP, one step for all coefficients) or `"jpeg"` (setting -> IJG
      quality with the standard tables).
    values: the discrete QPs (decreasing) or qualities (increasing), cheapest first; default QP
      50, 48, ..., 20 or quality 10, 20, ..., 90, 95.
    chroma_subsampling: code chroma at half resolution (4:2:0), as x264's yuv420p and JPEG do.
    round_rule: `"up"` (more expensive neighbour) or `"nearest"`.

  Returns:
    A `Knob` with a scalar setting.
  """
  _check_mode(mode)
  if values is None:
    values = DEFAULT_QPS if mode == "h264" else DEFAULT_QUALITIES
  ladder_values = _base.ladder(values, name="quantization")
  _check_ladder(mode, ladder_values)

  def to_physical(setting):
    return _base.ladder_to_physical(ladder_values, setting)

  def _code(setting, frames, channel_axis):
    physical = to_physical(_base.as_setting(setting, frames.dtype))
    step, tables = _steps_for(mode, physical)
    return _code_frames(frames, jnp.reshape(step, (1, 1)), tables,
                        chroma_subsampling=chroma_subsampling, channel_axis=channel_axis)

  return _codec_knob("quantization", (), _code, ladder_values, to_physical, round_rule)


def roi_quality(
    frame_size: tuple[int, int],
    *,
    values: Sequence[float] = DEFAULT_QPS,
    chroma_subsampling: bool = True,
    round_rule: str = "up",
) -> _base.Knob:
  """Region-of-interest quality: one H.264-style QP per 16x16 macroblock.

  The setting is an array `[ceil(H / 16), ceil(W / 16)]` of per-block settings in `[0, 1]`;
  each block is quantized with the step of its own QP. This is the quality map of RoI encoding
  (x264's per-macroblock QP offsets), and its gradient says which blocks the DNN needs sharp.

  Cost: the bytes estimate of `quantization`, which adds up block by block (unit ``"bytes"``).

  Channels first: `apply` and `cost` take `channel_axis=-3` for frames `[..., T, C, H, W]`
  (the output in the same layout; why a chain would: README, "The knobs").

  4:2:0 in: `apply` and `cost` also take a `knobs.YCbCr420` in whole 16x16 macroblocks, coded as
  it lies (what RGB frames are coded as after their conversion and 2x2 averaging); `apply`
  returns the decoded RGB in the layout `channel_axis` names.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> knob = knobs.roi_quality((36, 50))
    >>> knob.init().shape
    (3, 4)

  Args:
    frame_size: `(H, W)` of the frames this knob will see.
    values: the discrete QPs, cheapest (highest) first.
    chroma_subsampling: code chroma at 4:2:0.
    round_rule: `"up"` (more expensive neighbour) or `"nearest"`.

  Returns:
    A `Knob` whose setting is the per-macroblock array.
  """
  height, width = (int(v) for v in frame_size)
  if height < 1 or width < 1:
    raise ValueError(f"roi_quality: frame_size must be positive, got {frame_size}")
  grid = (-(-height // MACROBLOCK), -(-width // MACROBLOCK))
  ladder_values = _base.ladder(values, name="roi_quality")
  _check_ladder("h264", ladder_values)

  def to_physical(setting):
    return _base.ladder_to_physical(ladder_values, setting)

  def _code(setting, frames, channel_axis):
    h, w = (frames.luma.shape[-2:] if isinstance(frames, YCbCr420)
            else _base.frame_size(frames, channel_axis))
    if (h, w) != (height, width):
      raise ValueError(f"roi_quality: built for {height}x{width} frames, got {h}x{w}; make a "
                       f"knob with roi_quality(({h}, {w}))")
    qp = to_physical(_base.as_setting(setting, frames.dtype))
    ones = jnp.ones((BLOCK, BLOCK), frames.dtype)
    return _code_frames(frames, h264_qstep(qp), (ones, ones), chroma_subsampling=chroma_subsampling,
                        channel_axis=channel_axis)

  knob = _codec_knob("roi_quality", grid, _code, ladder_values, to_physical, round_rule)
  return knob._replace(init=lambda: jnp.ones(grid, jnp.float32))


def _check_ladder(mode: str, values: np.ndarray) -> None:
  if mode == "h264" and not (values[0] > values[-1] and values.min() >= 0 and values.max() <= 51):
    raise ValueError(f"QP values must decrease (cheapest first) within 0..51, got {values}")
  if mode == "jpeg" and not (values[0] < values[-1] and values.min() >= 1 and values.max() <= 100):
    raise ValueError(f"quality values must increase (cheapest first) within 1..100, got {values}")


def _codec_knob(name, setting_shape, code, values, to_physical, round_rule) -> _base.Knob:
  jitted = jax.jit(code, static_argnums=2)

  def check(setting, frames, channel_axis):
    _base.check_setting(setting, name=name, shape=setting_shape)
    if isinstance(frames, YCbCr420):
      _base._layout(channel_axis)  # the output's layout
      check_ycbcr420(frames)
    else:
      _base.check_video(frames, channel_axis=channel_axis)

  def apply(setting, frames, *, channel_axis=-1):
    check(setting, frames, channel_axis)
    return jitted(setting, frames, channel_axis)[0]

  def cost(setting, frames, *, channel_axis=-1):
    check(setting, frames, channel_axis)
    return jitted(setting, frames, channel_axis)[1] / 8.0

  return _base.Knob(
      init=lambda: jnp.ones(setting_shape, jnp.float32),
      apply=apply,
      cost=cost,
      values=values,
      to_physical=to_physical,
      round=lambda setting: _base.ladder_round(len(values), setting, rule=round_rule),
      name=name,
      unit="bytes",
  )
