"""MediaPipe's selfie segmentation written out as Flax NNX modules, with MediaPipe's weights.

The model reads 256x256 in `[0, 1]` and returns a person probability per pixel, 256x256.

- Encoder (MobileNetV3-small style). A 3x3 stride-2 stem with hard-swish feeds eight inverted
  bottlenecks (`Bottleneck`): 1x1 expansion, depthwise 3x3 or 5x5, an optional
  squeeze-and-excitation gate, a 1x1 projection, and a residual where the shapes allow. Stride
  16 gives 16x16x32.
- Head (LR-ASPP). A 1x1 convolution to 128 with ReLU, gated by a sigmoid of the pooled
  features, upsampled x2 and projected to the skip's width.
- Decoder. Three `Fusion` stages take the encoder's skips at 32x32, 64x64 and 128x128, via an
  attention gate: `skip * se(skip + up) + up`. Each stage then applies a 1x1 convolution with
  ReLU and a residual depthwise 3x3, and upsamples x2 (bilinear, half-pixel centres).
- Output. MediaPipe's custom 2x2 stride-2 transposed convolution with bias, then a sigmoid.

`SelfieNet.from_tflite(path)` copies the weights in, in the graph's layer order, checking every
shape. The output is `{"activation_10": [N, 256, 256, 1]}` (the graph's own name). It equals the
generic executor's output, and `tests/test_models.py` checks it against LiteRT.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _tflite, layers
from models._blazeface import DepthwiseConv


def hard_swish(x: jax.Array) -> jax.Array:
  return x * jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


def _conv1x1(cin: int, cout: int, rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(cin, cout, (1, 1), rngs=rngs)


def _pool(x: jax.Array) -> jax.Array:
  return jnp.mean(x, axis=(1, 2), keepdims=True)


def upsample2(x: jax.Array) -> jax.Array:
  """x2 bilinear resampling with half-pixel centres (TFLite's RESIZE_BILINEAR)."""
  rows = layers.resize_matrix(x.shape[1], 2 * x.shape[1], False, True)
  cols = layers.resize_matrix(x.shape[2], 2 * x.shape[2], False, True)
  x = jnp.einsum("ah,nhwc->nawc", rows, x)
  return jnp.einsum("bw,nawc->nabc", cols, x)


class SqueezeExcite(nnx.Module):
  """`x * sigmoid(up(relu(down(mean(x)))))`, the gate computed from `source` (default `x`)."""

  def __init__(self, channels: int, squeezed: int, *, rngs: nnx.Rngs):
    self.down = _conv1x1(channels, squeezed, rngs)
    self.up = _conv1x1(squeezed, channels, rngs)

  def gate(self, source: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(self.up(jax.nn.relu(self.down(_pool(source)))))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.gate(x)


class Spec(NamedTuple):
  cin: int
  expand: int
  cout: int
  kernel: int
  stride: int
  squeeze: int | None  # SE's inner width, None: no SE
  hswish: bool


ENCODER = (
    Spec(16, 16, 16, 3, 2, 8, False),
    Spec(16, 72, 24, 3, 2, None, False),
    Spec(24, 88, 24, 3, 1, None, False),
    Spec(24, 96, 32, 5, 2, 24, True),
    Spec(32, 128, 32, 5, 1, 32, True),
    Spec(32, 128, 32, 5, 1, 32, True),
    Spec(32, 96, 32, 5, 1, 24, True),
    Spec(32, 96, 32, 5, 1, 24, True),
)


class Bottleneck(nnx.Module):
  def __init__(self, spec: Spec, *, rngs: nnx.Rngs):
    self.spec = spec
    self.expand = _conv1x1(spec.cin, spec.expand, rngs)
    self.depthwise = DepthwiseConv(spec.expand, spec.stride, size=spec.kernel)
    self.excite = (SqueezeExcite(spec.expand, spec.squeeze, rngs=rngs)
                   if spec.squeeze is not None else None)
    self.project = _conv1x1(spec.expand, spec.cout, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    act = hard_swish if self.spec.hswish else jax.nn.relu
    y = act(self.depthwise(act(self.expand(x))))
    if self.excite is not None:
      y = self.excite(y)
    y = self.project(y)
    return y + x if self.spec.stride == 1 and self.spec.cin == self.spec.cout else y


class Fusion(nnx.Module):
  """One decoder stage: gate the skip by the upsampled features, refine, upsample, narrow."""

  def __init__(self, channels: int, out: int, *, rngs: nnx.Rngs):
    self.gate = SqueezeExcite(channels, channels, rngs=rngs)
    self.refine = _conv1x1(channels, channels, rngs)
    self.depthwise = DepthwiseConv(channels, 1)
    self.narrow = _conv1x1(channels, out, rngs) if out else None

  def __call__(self, skip: jax.Array, up: jax.Array) -> jax.Array:
    x = skip * self.gate.gate(skip + up) + up
    x = jax.nn.relu(self.refine(x))
    x = x + jax.nn.relu(self.depthwise(x))
    return x if self.narrow is None else self.narrow(upsample2(x))


class SelfieNet(nnx.Module):
  input_size = 256

  def __init__(self, *, rngs: nnx.Rngs):
    self.stem = nnx.Conv(3, 16, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
    self.encoder = nnx.List([Bottleneck(s, rngs=rngs) for s in ENCODER])
    self.head = _conv1x1(32, 128, rngs)
    self.head_gate = _conv1x1(32, 128, rngs)
    self.head_narrow = _conv1x1(128, 24, rngs)
    self.fuse_32 = Fusion(24, 16, rngs=rngs)
    self.fuse_64 = Fusion(16, 16, rngs=rngs)
    self.fuse_128 = Fusion(16, 0, rngs=rngs)
    self.output_kernel = nnx.Param(jnp.zeros((1, 2, 2, 16)))  # [O, kH, kW, I]
    self.output_bias = nnx.Param(jnp.zeros((1,)))

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    s128 = hard_swish(layers.conv_module(self.stem, x))
    skips = {}
    x = s128
    for i, block in enumerate(self.encoder):
      x = block(x)
      skips[i] = x
    s64, s32 = skips[0], skips[2]  # 64x64x16 and 32x32x24
    head = jax.nn.relu(self.head(x)) * jax.nn.sigmoid(self.head_gate(_pool(x)))
    up = self.head_narrow(upsample2(head))
    up = self.fuse_32(s32, up)
    up = self.fuse_64(s64, up)
    x = self.fuse_128(s128, up)
    out = layers.transpose_conv_bias(x, self.output_kernel[...], self.output_bias[...],
                                       (x.shape[0], 2 * x.shape[1], 2 * x.shape[2], 1))
    return {"activation_10": jax.nn.sigmoid(out)}

  def layers(self) -> list:
    """The weighted layers in the graph's order: `(kind, module)`."""
    order = [("CONV_2D", self.stem)]
    for block in self.encoder:
      order += [("CONV_2D", block.expand), ("DEPTHWISE_CONV_2D", block.depthwise)]
      if block.excite is not None:
        order += [("CONV_2D", block.excite.down), ("CONV_2D", block.excite.up)]
      order += [("CONV_2D", block.project)]
    order += [("CONV_2D", self.head), ("CONV_2D", self.head_gate), ("CONV_2D", self.head_narrow)]
    for fusion in (self.fuse_32, self.fuse_64, self.fuse_128):
      order += [("CONV_2D", fusion.gate.down), ("CONV_2D", fusion.gate.up),
                ("CONV_2D", fusion.refine), ("DEPTHWISE_CONV_2D", fusion.depthwise)]
      if fusion.narrow is not None:
        order += [("CONV_2D", fusion.narrow)]
    return order

  @classmethod
  def from_tflite(cls, path: str | pathlib.Path) -> SelfieNet:
    graph = _tflite.read_graph(path)
    net = cls(rngs=nnx.Rngs(0))
    weighted = [op for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    output = [op for op in graph.ops if op.kind == "CUSTOM:Convolution2DTransposeBias"]
    layers = net.layers()
    if len(weighted) != len(layers) or len(output) != 1:
      raise ValueError(f"{path}: the graph is not MediaPipe's selfie segmentation")
    for (kind, module), op in zip(layers, weighted):
      if op.kind != kind:
        raise ValueError(f"{path}: expected {kind}, found {op.kind}; the graph is not "
                         f"MediaPipe's selfie segmentation")
      kernel, bias = graph.constants[op.inputs[1]], graph.constants[op.inputs[2]]
      if kind == "CONV_2D":
        kernel = np.transpose(kernel, (1, 2, 3, 0))  # [O, kH, kW, I] -> [kH, kW, I, O]
      else:
        kernel = kernel[0]
      _set(module.kernel, kernel, path)
      _set(module.bias, bias, path)
    _set(net.output_kernel, graph.constants[output[0].inputs[1]], path)
    _set(net.output_bias, graph.constants[output[0].inputs[2]], path)
    return net


def _set(param: nnx.Param, value: np.ndarray, path) -> None:
  if tuple(param.shape) != tuple(value.shape):
    raise ValueError(f"{path}: weights of shape {value.shape} where the module wants "
                     f"{tuple(param.shape)}; the graph is not MediaPipe's selfie segmentation")
  param.set_value(jnp.asarray(value, jnp.float32))
