"""Layers the hand-written networks and the TFLite importer share, as TFLite computes them.

- `depthwise_conv`: depthwise convolution (multiplier 1) as a sum of shifted, scaled copies,
  which XLA's CPU backend runs 5 to 15 times faster than a grouped convolution.
- `resize_matrix`: TFLite's bilinear resize along one axis as a matrix.
- `transpose_conv_bias`: MediaPipe's Convolution2DTransposeBias.

All take NHWC arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ("depthwise_conv", "resize_matrix", "transpose_conv_bias")


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
  into one loop on every backend.
  """
  kh, kw, channels = kernel.shape  # TFLite's [1, kH, kW, C] without the leading 1
  if channels != x.shape[-1]:
    raise ValueError(f"depthwise multiplier other than 1 is not supported: kernel {kernel.shape}, "
                     f"input {x.shape}")
  window = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
  pads = jax.lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  out_h = (x.shape[1] - window[0]) // strides[0] + 1
  out_w = (x.shape[2] - window[1]) // strides[1] + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      y0, x0 = i * dilation[0], j * dilation[1]
      shifted = jax.lax.slice(
          x, (0, y0, x0, 0),
          (x.shape[0], y0 + (out_h - 1) * strides[0] + 1, x0 + (out_w - 1) * strides[1] + 1,
           channels), (1, strides[0], strides[1], 1))
      term = shifted * kernel[i, j].reshape(1, 1, 1, channels)
      out = term if out is None else out + term
  return out


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
