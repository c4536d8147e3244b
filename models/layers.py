"""Layers the hand-written networks and the TFLite importer share, as TFLite computes them.

- `depthwise_conv`: depthwise convolution (multiplier 1) as a sum of shifted, scaled copies,
  which XLA's CPU backend runs 5 to 15 times faster than a grouped convolution.
- `conv`: a convolution whose strided case has its backward pass computed at stride 1 on the
  input's space-to-depth blocks, so that its input gradient is a stride-1 convolution too.
- `max_pool`: max pooling; non-overlapping windows as a reshape and a max, whose gradient is an
  elementwise mask instead of XLA's select-and-scatter.
- `resize_matrix`: TFLite's bilinear resize along one axis as a matrix.
- `transpose_conv_bias`: MediaPipe's Convolution2DTransposeBias.

All take NHWC arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ("conv", "conv_module", "depthwise_conv", "max_pool", "resize_matrix",
           "transpose_conv_bias")


def resize_matrix(in_size, out_size, align_corners, half_pixel_centers):
  """TFLite's bilinear sampling along one axis as an `[out, in]` matrix."""
  if align_corners and out_size > 1:
    scale = (in_size - 1) / (out_size - 1)
  else:
    scale = in_size / out_size
  positions = np.arange(out_size, dtype=np.float64)
  src = (positions + 0.5) * scale - 0.5 if half_pixel_centers else positions * scale
  src = np.clip(src, 0.0, None) if half_pixel_centers else src
  low = np.floor(src).astype(int)
  frac = src - low
  low = np.clip(low, 0, in_size - 1)
  high = np.clip(low + 1, 0, in_size - 1)
  matrix = np.zeros((out_size, in_size))
  matrix[np.arange(out_size), low] += 1 - frac
  matrix[np.arange(out_size), high] += frac
  return matrix.astype(np.float32)


def depthwise_conv(x, kernel, strides, padding, dilation):
  """Depthwise convolution (multiplier 1) as a sum of `kH * kW` strided, scaled shifts of `x`.

  Equal to `lax.conv_general_dilated(..., feature_group_count=C)`, which XLA's CPU backend runs
  5 to 15 times slower, forward and backward (measured here on BlazeFace's layers); the sum fuses
  into one loop on every backend. Its gradient is written by hand (`_depthwise_bwd`): the input's
  is the same shifted sum over the stride-dilated cotangent with the kernel flipped, one fused
  loop, where autodiff's transpose of the strided slices builds `kH * kW` padded copies of the
  input's size (about 4 times the backward pass of the whole-frame pedestrian detector on a
  vtest frame; `benchmarks/server_overhead.py`, `benchmarks/RESULTS.md`).
  """
  channels = kernel.shape[-1]  # TFLite's [1, kH, kW, C] without the leading 1
  if kernel.ndim != 3 or channels != x.shape[-1]:
    raise ValueError(f"depthwise multiplier other than 1 is not supported: kernel {kernel.shape}, "
                     f"input {x.shape}")
  return _depthwise(x, kernel, tuple(int(s) for s in strides), padding,
                    tuple(int(d) for d in dilation))


def _window(kernel, dilation):
  return ((kernel.shape[0] - 1) * dilation[0] + 1, (kernel.shape[1] - 1) * dilation[1] + 1)


def _tap(x, i, j, strides, dilation, out_shape):
  """`x[:, i d0 + s0 y, j d1 + s1 x]` over the `[out_h, out_w]` outputs: one tap's input."""
  y0, x0 = i * dilation[0], j * dilation[1]
  return jax.lax.slice(
      x, (0, y0, x0, 0),
      (x.shape[0], y0 + (out_shape[0] - 1) * strides[0] + 1,
       x0 + (out_shape[1] - 1) * strides[1] + 1, x.shape[3]), (1, strides[0], strides[1], 1))


def _shifted_sum(x, kernel, strides, dilation, out_shape):
  """`sum_ij _tap(x, i, j) * kernel[i, j]`: the depthwise convolution of the padded `x`."""
  out = None
  for i in range(kernel.shape[0]):
    for j in range(kernel.shape[1]):
      term = _tap(x, i, j, strides, dilation, out_shape) * kernel[i, j].reshape(1, 1, 1, -1)
      out = term if out is None else out + term
  return out


def _pad_input(x, kernel, strides, padding, dilation):
  pads = jax.lax.padtype_to_pads(x.shape[1:3], _window(kernel, dilation), strides, padding)
  return jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0))), pads


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _depthwise(x, kernel, strides, padding, dilation):
  padded, _ = _pad_input(x, kernel, strides, padding, dilation)
  window = _window(kernel, dilation)
  out_shape = tuple((padded.shape[1 + a] - window[a]) // strides[a] + 1 for a in range(2))
  return _shifted_sum(padded, kernel, strides, dilation, out_shape)


def _depthwise_fwd(x, kernel, strides, padding, dilation):
  return _depthwise(x, kernel, strides, padding, dilation), (x, kernel)


def _depthwise_bwd(strides, padding, dilation, residuals, g):
  x, kernel = residuals
  padded, pads = _pad_input(x, kernel, strides, padding, dilation)
  window = _window(kernel, dilation)
  size = padded.shape[1:3]
  used = tuple((g.shape[1 + a] - 1) * strides[a] + 1 for a in range(2))
  # The cotangent on the padded input's grid (zeros between strides), with a window's margin
  # before: the input's gradient is its correlation with the flipped kernel, at stride 1.
  spread = jax.lax.pad(g, jnp.zeros((), g.dtype), (
      (0, 0, 0), *((window[a] - 1, size[a] - used[a], strides[a] - 1) for a in range(2)),
      (0, 0, 0)))
  grad_padded = _shifted_sum(spread, kernel[::-1, ::-1], (1, 1), dilation, size)
  grad_x = grad_padded[:, pads[0][0]:pads[0][0] + x.shape[1], pads[1][0]:pads[1][0] + x.shape[2]]
  # The kernel's gradient at each tap: that tap's input against the cotangent.
  grad_kernel = jnp.stack([
      jnp.stack([jnp.sum(_tap(padded, i, j, strides, dilation, g.shape[1:3]) * g, axis=(0, 1, 2))
                 for j in range(kernel.shape[1])]) for i in range(kernel.shape[0])])
  return grad_x, grad_kernel.astype(kernel.dtype)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def transpose_conv_bias(x, weights, bias, out_shape):
  """MediaPipe's Convolution2DTransposeBias: a transposed convolution plus bias (SAME)."""
  _, kh, kw, _ = weights.shape  # [O, kH, kW, I]
  stride = out_shape[1] // x.shape[1], out_shape[2] // x.shape[2]
  pads = []
  for k, s in ((kh, stride[0]), (kw, stride[1])):
    total = k - s  # so that output = input * stride
    before = total // 2
    pads.append((k - 1 - before, k - 1 - (total - before)))
  out = jax.lax.conv_general_dilated(
      x, jnp.flip(weights, axis=(1, 2)), (1, 1), pads, lhs_dilation=stride,
      dimension_numbers=("NHWC", "OHWI", "NHWC"))
  return out + bias.reshape(1, 1, 1, -1)


_MAX_PHASE_PADDING = 1.5  # the most work the zero taps of whole phases may add to the backward


def conv(x, kernel, strides, padding, dilation=(1, 1), *, kernel_layout="HWIO"):
  """`lax.conv_general_dilated` with an NHWC input, whose strided case has its backward pass
  computed at stride 1 on the input's `strides`-sized blocks (space-to-depth).

  The forward pass is XLA's own convolution. Autodiff's input gradient of a strided convolution
  is a convolution with `lhs_dilation`, which XLA's CPU backend runs 3 to 4 times slower than
  the forward convolution (BlazeFace's 5x5 stride-2 stem, 10 frames at 256x256: 42 to 71 ms,
  against 27 to 36 ms this way; `benchmarks/layer_backward.py`). The same sum over blocks is a
  stride-1 convolution with the phases folded into channels, whose input gradient is a plain
  convolution again; it runs only in the backward pass, as its forward pass costs a little more
  than XLA's strided one (the kernel padded to whole phases with zeros). Where those zeros
  would add more than half the kernel's work (a 3x3 at stride 2: 16 taps for 9; SSDLite's stem
  measured 31 to 47 ms XLA's way against 35 to 74 ms this way) the convolution is XLA's,
  backward too, as are dilated kernels (`rhs_dilation`) and stride 1.

  Args:
    x: `[N, H, W, C]`.
    kernel: `[kH, kW, C, O]`, or `[O, kH, kW, C]` with `kernel_layout="OHWI"` (TFLite's).
    strides, dilation: per spatial axis.
    padding: `"SAME"`, `"VALID"` or `((top, bottom), (left, right))`.
  """
  if kernel_layout not in ("HWIO", "OHWI"):
    raise ValueError(f"kernel_layout must be 'HWIO' or 'OHWI', got {kernel_layout!r}")
  strides, dilation = tuple(int(s) for s in strides), tuple(int(d) for d in dilation)
  window = kernel.shape[:2] if kernel_layout == "HWIO" else kernel.shape[1:3]
  # The kernel padded to whole phases: 6x6 taps for a 5x5 at stride 2 (1.44 times the work),
  # 4x4 for a 3x3 (1.78 times, where XLA's own backward pass measured as fast or faster).
  padded = np.prod([-(-window[a] // strides[a]) * strides[a] for a in range(2)])
  if strides == (1, 1) or dilation != (1, 1) or padded > _MAX_PHASE_PADDING * np.prod(window):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                        dimension_numbers=("NHWC", kernel_layout, "NHWC"))
  if kernel_layout == "OHWI":
    kernel = jnp.transpose(kernel, (1, 2, 3, 0))
  pads = (jax.lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
          if isinstance(padding, str) else padding)
  return _strided_conv(x, kernel, strides, tuple(tuple(int(v) for v in p) for p in pads))


_NHWC_HWIO = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, kernel, strides, pads):
  return jax.lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_NHWC_HWIO)


def _strided_conv_fwd(x, kernel, strides, pads):
  return _strided_conv(x, kernel, strides, pads), (x, kernel)


def _strided_conv_bwd(strides, pads, residuals, g):
  _, pullback = jax.vjp(lambda x, k: _space_to_depth_conv(x, k, strides, pads), *residuals)
  return pullback(g)


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def _space_to_depth_conv(x, kernel, strides, pads):
  """The strided convolution as a stride-1 one over `strides`-sized blocks of the input."""
  window = kernel.shape[:2]
  out = [(x.shape[1 + a] + sum(pads[a]) - window[a]) // strides[a] + 1 for a in range(2)]
  taps = [-(-window[a] // strides[a]) for a in range(2)]  # kernel rows (columns) per phase
  # The padded input, cut or extended to whole blocks: out + taps - 1 of them along each axis.
  size = [(out[a] + taps[a] - 1) * strides[a] for a in range(2)]
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), (
      (0, 0, 0), *((pads[a][0], size[a] - pads[a][0] - x.shape[1 + a], 0) for a in range(2)),
      (0, 0, 0)))
  (sh, sw), channels = strides, x.shape[3]
  blocks = x.reshape(x.shape[0], size[0] // sh, sh, size[1] // sw, sw, channels)
  blocks = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(*blocks.shape[:2], size[1] // sw, -1)
  # Kernel tap (i, j) = (taps_i * sh + di, taps_j * sw + dj) reads phase (di, dj) of block
  # (y + taps_i, x + taps_j): zero-pad the kernel to whole phases and fold them into channels.
  kernel = jnp.pad(kernel, ((0, taps[0] * sh - window[0]), (0, taps[1] * sw - window[1]),
                            (0, 0), (0, 0)))
  kernel = kernel.reshape(taps[0], sh, taps[1], sw, channels, -1).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(taps[0], taps[1], sh * sw * channels, -1)
  return jax.lax.conv_general_dilated(blocks, kernel, (1, 1), "VALID",
                                      dimension_numbers=_NHWC_HWIO)


def conv_module(module, x):
  """An `nnx.Conv` (2-D, ungrouped) applied through `conv`: the same output, a faster input
  gradient when it strides."""
  if module.feature_group_count != 1 or len(module.kernel_size) != 2:
    raise ValueError(f"conv_module takes a 2-D ungrouped nnx.Conv, got kernel "
                     f"{module.kernel_size} in {module.feature_group_count} groups")

  def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)

  out = conv(x, module.kernel[...], pair(module.strides or 1), module.padding,
             pair(module.kernel_dilation or 1))
  return out if module.bias is None else out + module.bias[...].reshape(1, 1, 1, -1)


def max_pool(x, window, strides, padding="VALID"):
  """Max pooling over an `[N, H, W, C]` array (padding as `lax.padtype_to_pads` reads it; padded
  elements never win).

  Where windows do not overlap (`window == strides`) the pool is a reshape and a max over the
  window axes: the same values, and an elementwise mask for a gradient, where
  `lax.reduce_window`'s is a select-and-scatter that XLA's CPU backend runs in 5 to 8 times the
  forward pool's time (BlazeFace's stride-2 shortcut, 10 frames at 128x128x24: 36 to 61 ms,
  against 7 to 10 ms this way; `benchmarks/layer_backward.py`). One difference, at ties only:
  the reshape's gradient splits the cotangent equally among a window's equal maxima,
  select-and-scatter gives it all to the first (both are subgradients; on the ReLU outputs these
  networks pool, a tie is almost always at zero, where the ReLU passes no gradient either way).
  """
  window, strides = tuple(int(w) for w in window), tuple(int(s) for s in strides)
  pads = (jax.lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
          if isinstance(padding, str) else tuple(tuple(p) for p in padding))
  if window != strides:
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *strides, 1),
                                 ((0, 0), *pads, (0, 0)))
  out = [(x.shape[1 + a] + sum(pads[a]) - window[a]) // strides[a] + 1 for a in range(2)]
  x = jax.lax.pad(x, jnp.array(-jnp.inf, x.dtype), (
      (0, 0, 0), *((pads[a][0], out[a] * window[a] - pads[a][0] - x.shape[1 + a], 0)
                   for a in range(2)), (0, 0, 0)))
  x = x.reshape(x.shape[0], out[0], window[0], out[1], window[1], x.shape[3])
  return jnp.max(x, axis=(2, 4))
