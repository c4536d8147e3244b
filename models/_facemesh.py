"""MediaPipe's face mesh (Kartynnik et al., 2019) written out as Flax NNX modules.

The network reads a 192x192 face crop in `[0, 1]`. A 3x3 stride-2 stem and PReLU feed a trunk
of thirteen BlazeBlocks (`models._blazeface.BlazeBlock` with PReLU) down to 6x6x128. Two
branches start there:

- landmarks: three blocks (the first strides to 3x3), a 1x1 convolution to 32 channels with
  PReLU, one block, and a 3x3 valid convolution to 468 x (x, y, z) = 1404 numbers;
- presence: one strided block, the same 1x1-to-32 and block, and a 3x3 valid convolution to
  one face-presence logit.

`FaceMeshNet.from_tflite(path)` copies MediaPipe's weights in by walking the `.tflite` graph
from its input, layer by layer, so every weight lands where the data flows. The outputs are
`{"conv2d_21": landmarks [N, 1, 1, 1404], "conv2d_31": presence [N, 1, 1, 1]}`, the graph's
own names, and equal the generic executor's (`tests/test_models.py` checks them against
LiteRT).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _tflite, layers
from models._blazeface import BlazeBlock, Block, PReLU

TRUNK = ([Block(16, 16, prelu=True)] * 2 + [Block(16, 32, 2, prelu=True)]
         + [Block(32, 32, prelu=True)] * 2 + [Block(32, 64, 2, prelu=True)]
         + [Block(64, 64, prelu=True)] * 2 + [Block(64, 128, 2, prelu=True)]
         + [Block(128, 128, prelu=True)] * 2 + [Block(128, 128, 2, prelu=True)]
         + [Block(128, 128, prelu=True)] * 2)


class Branch(nnx.Module):
  """Blocks, a 1x1 convolution to 32 channels with PReLU, one block and the output layer."""

  def __init__(self, blocks: list[Block], outputs: int, *, rngs: nnx.Rngs):
    self.blocks = nnx.List([BlazeBlock(b, rngs=rngs) for b in blocks])
    self.narrow = nnx.Conv(blocks[-1].cout, 32, (1, 1), rngs=rngs)
    self.narrow_activation = PReLU(32)
    self.last_block = BlazeBlock(Block(32, 32, prelu=True), rngs=rngs)
    self.head = nnx.Conv(32, outputs, (3, 3), strides=(3, 3), padding="VALID", rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for block in self.blocks:
      x = block(x)
    x = self.last_block(self.narrow_activation(self.narrow(x)))
    return self.head(x)


class FaceMeshNet(nnx.Module):
  """`[N, 192, 192, 3]` in `[0, 1]` -> `{"conv2d_21": [N, 1, 1, 1404], "conv2d_31": [N, 1, 1, 1]}`."""

  input_size = 192

  def __init__(self, *, rngs: nnx.Rngs):
    self.stem = nnx.Conv(3, 16, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
    self.stem_activation = PReLU(16)
    self.trunk = nnx.List([BlazeBlock(b, rngs=rngs) for b in TRUNK])
    strided = Block(128, 128, 2, prelu=True)
    self.landmarks = Branch([strided, Block(128, 128, prelu=True), Block(128, 128, prelu=True)],
                            468 * 3, rngs=rngs)
    self.presence = Branch([strided], 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = self.stem_activation(layers.conv_module(self.stem, x))
    for block in self.trunk:
      x = block(x)
    return {"conv2d_21": self.landmarks(x), "conv2d_31": self.presence(x)}

  @classmethod
  def from_tflite(cls, path: str | pathlib.Path) -> FaceMeshNet:
    graph = _tflite.read_graph(path)
    net = cls(rngs=nnx.Rngs(0))
    walker = _Walker(graph, path)
    x = walker.conv(net.stem, graph.inputs[0])
    x = walker.prelu(net.stem_activation, x)
    for block in net.trunk:
      x = walker.block(block, x)
    # Two blocks start at the trunk's output; the landmark branch's first is followed by a
    # second block, the presence branch's by the 1x1 convolution.
    starts = walker.consumers(x, "DEPTHWISE_CONV_2D")
    if len(starts) != 2:
      raise ValueError(f"{path}: the graph is not MediaPipe's face mesh (no two branches)")
    for branch in (net.landmarks, net.presence):
      for dw in starts:
        trial = _Walker(graph, path, dry=True)
        after = trial.block(branch.blocks[0], x, dw)
        if bool(trial.consumers(after, "DEPTHWISE_CONV_2D")) == (len(branch.blocks) > 1):
          y = walker.block(branch.blocks[0], x, dw)
          break
      else:
        raise ValueError(f"{path}: the graph is not MediaPipe's face mesh (branches)")
      for block in branch.blocks[1:]:
        y = walker.block(block, y)
      y = walker.prelu(branch.narrow_activation, walker.conv(branch.narrow, y))
      walker.conv(branch.head, walker.block(branch.last_block, y))
    return net


class _Walker:
  """Follows the graph's data flow from a tensor, copying each layer's weights into the
  module built for it (checked by shape); `dry` only follows."""

  def __init__(self, graph, path, *, dry: bool = False):
    self.graph, self.path, self.dry = graph, path, dry

  def consumers(self, tensor: int, kind: str) -> list:
    return [op for op in self.graph.ops if op.kind == kind and tensor in op.inputs]

  def _one(self, tensor: int, kind: str):
    found = self.consumers(tensor, kind)
    if len(found) != 1:
      raise ValueError(f"{self.path}: expected one {kind} after tensor {tensor}, found "
                       f"{len(found)}; the graph is not MediaPipe's face mesh")
    return found[0]

  def _set(self, param: nnx.Param, value: np.ndarray, op) -> None:
    if tuple(param.shape) != tuple(value.shape):
      raise ValueError(f"{self.path}: {op.kind} weights have shape {value.shape}, the module "
                       f"wants {tuple(param.shape)}; the graph is not MediaPipe's face mesh")
    if not self.dry:
      param.set_value(jnp.asarray(value, jnp.float32))

  def conv(self, module: nnx.Conv, tensor: int, op=None) -> int:
    op = op or self._one(tensor, "CONV_2D")
    self._set(module.kernel, np.transpose(self.graph.constants[op.inputs[1]], (1, 2, 3, 0)), op)
    self._set(module.bias, self.graph.constants[op.inputs[2]], op)
    return op.outputs[0]

  def prelu(self, module: PReLU, tensor: int) -> int:
    op = self._one(tensor, "PRELU")
    self._set(module.alpha, self.graph.constants[op.inputs[1]].reshape(-1), op)
    return op.outputs[0]

  def block(self, block: BlazeBlock, tensor: int, dw=None) -> int:
    dw = dw or self._one(tensor, "DEPTHWISE_CONV_2D")
    self._set(block.depthwise.kernel, self.graph.constants[dw.inputs[1]][0], dw)
    self._set(block.depthwise.bias, self.graph.constants[dw.inputs[2]], dw)
    out = self.conv(block.project, dw.outputs[0])
    add = self._one(out, "ADD")
    return self.prelu(block.activation, add.outputs[0])
