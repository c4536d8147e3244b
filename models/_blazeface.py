"""BlazeFace (Bazarevsky et al., 2019) written out as Flax NNX modules, with MediaPipe's weights.

The network is a stem convolution and a stack of BlazeBlocks, with two SSD heads: one on the
16x16 feature map (2 anchors per cell) and one on the 8x8 map (6 anchors per cell).

    BlazeBlock(x) = relu(project(depthwise(x)) + shortcut(x))

`depthwise` is a 3x3 depthwise convolution (stride 1 or 2) and `project` a 1x1 convolution to
`out` channels. The shortcut max-pools 2x2 when the block strides and zero-pads the channels
when it widens. The back model's last block has no shortcut.

`BlazeFaceNet.from_tflite(path)` builds the architecture of the "back" (256x256) or
"short_range" (128x128) model and copies the weights out of MediaPipe's `.tflite` file. Its
outputs equal the generic TFLite executor's (`models._tflite.TFLiteNet`), and so LiteRT's
(`tests/test_models.py`). Edit the blocks, the heads or the activations here to experiment.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _tflite, layers


class Block(NamedTuple):
  """One BlazeBlock: `cin -> cout` channels, `stride` 1 or 2, with or without the shortcut,
  ReLU or (MediaPipe's face mesh) PReLU after the sum."""

  cin: int
  cout: int
  stride: int = 1
  shortcut: bool = True
  prelu: bool = False


def _repeat(channels: int, count: int) -> list[Block]:
  return [Block(channels, channels)] * count


# The two MediaPipe face detectors, read off their .tflite graphs. `taps`: the blocks whose
# outputs feed the 16x16 and the 8x8 heads.
ARCHITECTURES = {
    "back": {
        "input_size": 256,
        "blocks": (_repeat(24, 7) + [Block(24, 24, 2)] + _repeat(24, 7) + [Block(24, 48, 2)]
                   + _repeat(48, 7) + [Block(48, 96, 2)] + _repeat(96, 7)
                   + [Block(96, 96, 2, shortcut=False)]),
        "taps": (30, 31)},
    "short_range": {
        "input_size": 128,
        "blocks": [Block(24, 24), Block(24, 28), Block(28, 32, 2), Block(32, 36), Block(36, 42),
                   Block(42, 48, 2), Block(48, 56), Block(56, 64), Block(64, 72), Block(72, 80),
                   Block(80, 88), Block(88, 96, 2)] + _repeat(96, 4),
        "taps": (10, 15)},
}


class DepthwiseConv(nnx.Module):
  """A 3x3 depthwise convolution with bias and TFLite's SAME padding (extra pixel at the end),
  computed as a sum of shifted, scaled copies (`models.layers.depthwise_conv`), which XLA's CPU
  backend runs several times faster than a grouped convolution."""

  def __init__(self, channels: int, stride: int, *, size: int = 3):
    self.kernel = nnx.Param(jnp.zeros((size, size, channels)))
    self.bias = nnx.Param(jnp.zeros((channels,)))
    self.stride = stride

  def __call__(self, x: jax.Array) -> jax.Array:
    out = layers.depthwise_conv(x, self.kernel[...], (self.stride, self.stride), "SAME", (1, 1))
    return out + self.bias[...].reshape(1, 1, 1, -1)


class PReLU(nnx.Module):
  """`max(x, 0) + alpha * min(x, 0)` with one learned `alpha` per channel."""

  def __init__(self, channels: int):
    self.alpha = nnx.Param(jnp.zeros((channels,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    alpha = self.alpha[...].reshape((1,) * (x.ndim - 1) + (-1,))
    return jnp.maximum(x, 0.0) + alpha * jnp.minimum(x, 0.0)


class BlazeBlock(nnx.Module):
  def __init__(self, block: Block, *, rngs: nnx.Rngs):
    self.depthwise = DepthwiseConv(block.cin, block.stride)
    self.project = nnx.Conv(block.cin, block.cout, (1, 1), rngs=rngs)
    self.activation = PReLU(block.cout) if block.prelu else jax.nn.relu
    self.spec = block

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.project(self.depthwise(x))
    if not self.spec.shortcut:
      return self.activation(y)
    shortcut = x
    if self.spec.stride == 2:
      shortcut = layers.max_pool(shortcut, (2, 2), (2, 2), "SAME")
    if self.spec.cout > self.spec.cin:
      shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, self.spec.cout - self.spec.cin)))
    return self.activation(y + shortcut)


class BlazeFaceNet(nnx.Module):
  """The BlazeFace network: `[N, S, S, 3]` in `[-1, 1]` (S = 256 or 128) -> `{"regressors":
  [N, 896, 16], "classificators": [N, 896, 1]}`, MediaPipe's outputs, anchors in SSD order
  (the 16x16 map's 512 first)."""

  def __init__(self, variant: str = "back", *, rngs: nnx.Rngs):
    if variant not in ARCHITECTURES:
      raise ValueError(f"BlazeFace variant must be one of {sorted(ARCHITECTURES)}, got {variant!r}")
    arch = ARCHITECTURES[variant]
    blocks = arch["blocks"]
    self.variant = variant
    self.input_size = arch["input_size"]
    self.taps = arch["taps"]
    self.stem = nnx.Conv(3, blocks[0].cin, (5, 5), strides=(2, 2), padding="SAME", rngs=rngs)
    self.blocks = nnx.List([BlazeBlock(b, rngs=rngs) for b in blocks])
    fine, coarse = blocks[self.taps[0]].cout, blocks[self.taps[1]].cout
    self.classify_16 = nnx.Conv(fine, 2, (1, 1), rngs=rngs)
    self.classify_8 = nnx.Conv(coarse, 6, (1, 1), rngs=rngs)
    self.regress_16 = nnx.Conv(fine, 2 * 16, (1, 1), rngs=rngs)
    self.regress_8 = nnx.Conv(coarse, 6 * 16, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = jax.nn.relu(layers.conv_module(self.stem, x))
    features = {}
    for i, block in enumerate(self.blocks):
      x = block(x)
      if i in self.taps:
        features[i] = x
    fine, coarse = features[self.taps[0]], features[self.taps[1]]
    n = x.shape[0]
    scores = jnp.concatenate([self.classify_16(fine).reshape(n, -1, 1),
                              self.classify_8(coarse).reshape(n, -1, 1)], axis=1)
    boxes = jnp.concatenate([self.regress_16(fine).reshape(n, -1, 16),
                             self.regress_8(coarse).reshape(n, -1, 16)], axis=1)
    return {"regressors": boxes, "classificators": scores}

  @classmethod
  def from_tflite(cls, path: str | pathlib.Path, variant: str = "back") -> BlazeFaceNet:
    """The network with MediaPipe's weights from its `.tflite` file (sha256-verified by the
    caller). The graph's layers are matched to the modules by role and checked by shape."""
    graph = _tflite.read_graph(path)
    net = cls(variant, rngs=nnx.Rngs(0))
    depthwise_outputs = {op.outputs[0] for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"}
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    stem = [op for op in convs if op.inputs[0] in graph.inputs]
    projections = [op for op in convs if op.inputs[0] in depthwise_outputs]
    heads = {graph.shapes[op.inputs[1]][0]: op for op in convs
             if op not in stem and op not in projections}
    depthwise = [op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"]
    if (len(stem), len(projections), len(depthwise)) != (1, len(net.blocks), len(net.blocks)) \
        or sorted(heads) != [2, 6, 32, 96]:
      raise ValueError(f"{path}: the graph is not a BlazeFace {variant} network")

    def conv(module: nnx.Conv, op):
      kernel = graph.constants[op.inputs[1]]  # TFLite [O, kH, kW, I] -> [kH, kW, I, O]
      _assign(module.kernel, np.transpose(kernel, (1, 2, 3, 0)), path, op)
      _assign(module.bias, graph.constants[op.inputs[2]], path, op)

    conv(net.stem, stem[0])
    for block, dw, projection in zip(net.blocks, depthwise, projections):
      _assign(block.depthwise.kernel, graph.constants[dw.inputs[1]][0], path, dw)
      _assign(block.depthwise.bias, graph.constants[dw.inputs[2]], path, dw)
      conv(block.project, projection)
    for module, channels in ((net.classify_16, 2), (net.classify_8, 6), (net.regress_16, 32),
                             (net.regress_8, 96)):
      conv(module, heads[channels])
    return net


def _assign(param: nnx.Param, value: np.ndarray, path, op) -> None:
  if tuple(param.shape) != tuple(value.shape):
    raise ValueError(f"{path}: {op.kind} weights have shape {value.shape}, the module wants "
                     f"{tuple(param.shape)}")
  param.set_value(jnp.asarray(value, jnp.float32))
