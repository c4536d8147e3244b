"""BlazeFace face detection: SSD anchors, square tiles of wide frames, the network, and
MediaPipe's decoding, weighted non-maximum suppression and box IoU."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx

from models import _assets, _blazeface
from models._boxes import box_iou
from models._mp_assets import ASSETS, flatten, tile_crops


def ssd_anchors(input_size: int, strides: tuple[int, ...]) -> np.ndarray:
  """MediaPipe's SsdAnchorsCalculator with fixed-size anchors: `[K, 2]` centres in `[0, 1]`.

  Consecutive layers with the same stride share one grid; each layer adds two anchors per cell
  (aspect ratio 1 and the interpolated scale), which is all the decoder needs when the anchor
  size is fixed.
  """
  centres = []
  layer = 0
  while layer < len(strides):
    stride = strides[layer]
    repeats = 0
    while layer < len(strides) and strides[layer] == stride:
      repeats += 2
      layer += 1
    cells = -(-input_size // stride)
    ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                         indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    centres.append(np.repeat(grid, repeats, axis=0))
  return np.concatenate(centres).astype(np.float32)


def square_tiles(height: int, width: int, *, max_aspect: float = 4.0 / 3.0) -> np.ndarray:
  """Square windows `[K, 4]` (x0, y0, side_x, side_y in pixels) covering a frame.

  A frame no wider (or taller) than `max_aspect` is one tile (resized to a square, as
  MediaPipe does); a wider one is covered by `ceil(long / short)` squares of the short side,
  evenly spaced, so small faces are not squashed.
  """
  long_side, short_side = max(height, width), min(height, width)
  if long_side <= max_aspect * short_side:
    return np.array([[0.0, 0.0, width, height]], np.float32)
  count = int(np.ceil(long_side / short_side))
  starts = np.linspace(0, long_side - short_side, count)
  if width >= height:
    return np.array([[s, 0.0, short_side, short_side] for s in starts], np.float32)
  return np.array([[0.0, s, short_side, short_side] for s in starts], np.float32)


class BlazeFace(nnx.Module):
  """MediaPipe BlazeFace face detector on frames of any size.

  `__call__` returns raw outputs per tile: `regressors [..., K, 896, 16]` (box centre offset and
  size, then 6 keypoints, in input pixels relative to the anchor) and `scores [..., K, 896]`
  (logits). `detections` decodes them into frame coordinates with MediaPipe's blended
  non-maximum suppression.

  Args:
    variant: `"back"` (256x256, the default: finds the small faces of wide street scenes when
      tiled) or `"short_range"` (128x128, faces within about 2 m).
    max_aspect: frames wider than this are covered by square tiles instead of being squashed.
  """

  def __init__(self, *, variant: str = "back", max_aspect: float = 4.0 / 3.0):
    if variant not in ("back", "short_range"):
      raise ValueError(f"BlazeFace variant must be 'back' or 'short_range', got {variant!r}")
    asset = ASSETS["face_detection_back" if variant == "back" else "face_detection_short_range"]
    # The readable architecture (models/_blazeface.py), MediaPipe's weights copied in.
    self.net = _blazeface.BlazeFaceNet.from_tflite(_assets.path(asset), variant)
    self.input_size = self.net.input_size
    strides = (16, 32, 32, 32) if variant == "back" else (8, 16, 16, 16)
    self.anchors = nnx.static(tuple(map(tuple, ssd_anchors(self.input_size, strides).tolist())))
    self.max_aspect = max_aspect
    self.variant = variant

  def tiles(self, height: int, width: int) -> np.ndarray:
    return square_tiles(height, width, max_aspect=self.max_aspect)

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = flatten(frames)
    height, width = flat.shape[1:3]
    tiles = self.tiles(height, width)
    batch = tile_crops(flat, [[int(v) for v in tile] for tile in tiles], self.input_size)
    raw = self.net(batch * 2.0 - 1.0)  # BlazeFace reads [-1, 1]
    count = len(tiles)
    regressors = raw["regressors"].reshape(lead + (count, 896, 16))
    scores = raw["classificators"].reshape(lead + (count, 896))
    return {"regressors": regressors, "scores": scores}


def decode_anchors(regressors, anchors, origin, extent, input_size: int):
  """MediaPipe's TensorsToDetections for fixed-size anchors, in frame pixels.

  Args:
    regressors: raw `[..., 4 + 2 K]` (box centre offset and size, then K keypoints, in input
      pixels: BlazeFace's 6, BlazePose's 4).
    anchors: `[..., 2]` anchor centres in `[0, 1]` of their tile.
    origin, extent: `[..., 2]` each anchor's tile's top-left corner and size in frame pixels.
    input_size: the network's input side.

  Returns `(centre [..., 2], size [..., 2], keypoints [..., K, 2])`. Works on NumPy arrays
  (`blazeface_detections`) and JAX arrays alike (`FaceLandmark.roi`, inside the graph).
  """
  centre = origin + (regressors[..., 0:2] / input_size + anchors) * extent
  size = regressors[..., 2:4] / input_size * extent
  points = regressors[..., 4:].reshape(regressors.shape[:-1] + (-1, 2)) / input_size
  keypoints = origin[..., None, :] + (points + anchors[..., None, :]) * extent[..., None, :]
  return centre, size, keypoints


@dataclasses.dataclass
class Detections:
  """Faces in one frame: `boxes [N, 4]` (x0, y0, x1, y1 pixels), `scores [N]`, `keypoints [N, 6, 2]`."""

  boxes: np.ndarray
  scores: np.ndarray
  keypoints: np.ndarray


def blazeface_detections(model: BlazeFace, outputs: dict, frame_size: tuple[int, int], *,
                         min_score: float = 0.5, iou_threshold: float = 0.3) -> Detections:
  """Decodes one frame's raw outputs (`regressors [K, 896, 16]`, `scores [K, 896]`).

  MediaPipe's TensorsToDetections (scale = input size, fixed anchors) and its "weighted"
  non-maximum suppression: overlapping candidates are blended, weighted by score.
  """
  regressors = np.asarray(outputs["regressors"], np.float64)
  logits = np.asarray(outputs["scores"], np.float64)
  anchors = np.asarray(model.anchors, np.float64)
  size = model.input_size
  boxes, scores, keypoints = [], [], []
  for (x0, y0, sx, sy), reg, logit in zip(model.tiles(*frame_size), regressors, logits):
    score = 1.0 / (1.0 + np.exp(-np.clip(logit, -100, 100)))
    keep = score >= min_score
    if not keep.any():
      continue
    centre, extent, points = decode_anchors(reg[keep], anchors[keep], np.array([x0, y0]),
                                            np.array([sx, sy]), size)
    boxes.append(np.concatenate([centre - extent / 2, centre + extent / 2], axis=-1))
    keypoints.append(points)
    scores.append(score[keep])
  if not boxes:
    return Detections(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 6, 2)))
  boxes, scores, keypoints = np.concatenate(boxes), np.concatenate(scores), np.concatenate(keypoints)
  order = np.argsort(-scores)
  boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
  out_boxes, out_scores, out_points = [], [], []
  remaining = np.ones(len(scores), bool)
  for i in range(len(scores)):
    if not remaining[i]:
      continue
    overlap = remaining & (box_iou(boxes[i:i + 1], boxes)[0] > iou_threshold)
    weights = scores[overlap][:, None]
    out_boxes.append((boxes[overlap] * weights).sum(0) / weights.sum())
    out_points.append((keypoints[overlap] * weights[:, :, None]).sum(0) / weights.sum())
    out_scores.append(scores[i])
    remaining &= ~overlap
  return Detections(np.array(out_boxes), np.array(out_scores), np.array(out_points))


# --------------------------------------------------------------------------- segmentation, mesh
