"""MediaPipe BlazePose (Bazarevsky et al., 2020): 33 body keypoints of every person in a frame.

As MediaPipe's pose graph runs it, in two stages:

1. `pose_detection.tflite` (224x224, values in [-1, 1]) finds people: per anchor a score and a
   box with four keypoints, the first the centre of the hips and the second a point whose
   distance from it is the radius of a circle around the whole body. Its weights are stored
   sparse (the DENSIFY operator; `models._tflite.densify`). People in a surveillance frame are
   small, and the whole frame squashed to 224 pixels shows the detector nobody, so it runs on
   square tiles of 224 frame pixels, unscaled, overlapping to cover the frame.
2. `pose_landmark_full.tflite` (256x256, values in [0, 1]) runs on each person's region: a
   square centred on the hips, 2.5 body radii wide (the circle's diameter, scaled by 1.25),
   rotated so the body is upright. It gives 39 landmarks (the first 33 the body's), each with
   visibility and presence logits, and a pose-presence probability.

Both networks run in the generic TFLite executor (`models._tflite.TFLiteNet`), checked against
LiteRT. Which people are found and where their regions are is decided under `stop_gradient`: the
gradient with respect to the frame flows through the sampled pixels of each region.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _assets, _tflite
from models._boxes import greedy_keep
from models._face_detection import decode_anchors, ssd_anchors
from models._mp_assets import ASSETS, flatten, region_to_frame, sample_regions, tile_crops

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
BODY_KEYPOINTS = 33
#: MediaPipe's pose-detection anchors: strides 8, 16, 32, 32, 32 (2254 anchors at 224).
STRIDES = (8, 16, 32, 32, 32)


def square_tiles(height: int, width: int, side: int = DETECTOR_SIZE) -> np.ndarray:
  """The fewest `side`-pixel squares `[K, 4]` (x0, y0, side, side) that cover the frame, evenly
  spaced, neighbours overlapping by what is left over (a 768x576 frame: 4 x 3 tiles, overlapping
  by 43 and 48 pixels). A frame smaller than `side` is one tile, padded with zeros."""
  def starts(length):
    count = max(1, math.ceil(length / side))
    return np.linspace(0.0, max(length - side, 0), count) if count > 1 else np.zeros(1)

  return np.array([[x, y, side, side] for y in starts(height) for x in starts(width)], np.float32)


class BodyLandmarks(nnx.Module):
  """MediaPipe BlazePose, pose detection on tiles and the full landmark model on each person.

  `__call__` takes float32 frames `[..., H, W, 3]` in `[0, 1]` and returns, for up to
  `max_people` people per frame (slots in order of detection score):

  - `landmarks [..., P, 33, 2]`: the body keypoints in frame pixels;
  - `presence [..., P]`: the landmark model's pose-presence probability;
  - `valid [..., P]`: whether the slot holds a person (detection score at least `min_score`);
  - `boxes [..., P, 4]`: the detector's box (x0, y0, x1, y1, frame pixels), to match people;
  - `roi [..., P, 4]`: each region (centre x, centre y, side, rotation in radians).

  Args:
    max_people: slots per frame (vtest has at most 7 people at a time).
    min_score: the detector's score threshold (MediaPipe: 0.5).
    iou_threshold: detections overlapping more are one person (MediaPipe: 0.3).
    candidates: the best-scoring anchors of a frame (all tiles) that suppression looks at.
  """

  def __init__(self, *, max_people: int = 8, min_score: float = 0.5, iou_threshold: float = 0.3,
               candidates: int = 64):
    self.detector = _tflite.TFLiteNet(_tflite.read_graph(_assets.path(ASSETS["pose_detection"])))
    self.landmarker = _tflite.TFLiteNet(
        _tflite.read_graph(_assets.path(ASSETS["pose_landmark_full"])))
    self.anchors = nnx.static(tuple(map(tuple, ssd_anchors(DETECTOR_SIZE, STRIDES).tolist())))
    self.max_people, self.min_score = max_people, min_score
    self.iou_threshold, self.candidates = iou_threshold, candidates

  def tiles(self, height: int, width: int) -> np.ndarray:
    return square_tiles(height, width)

  def detect(self, flat: jax.Array):
    """People in `[N, H, W, 3]`: per slot whether it holds one, its box and its region of
    interest."""
    height, width = flat.shape[1:3]
    tiles = self.tiles(height, width)
    pad_h = max(0, DETECTOR_SIZE - height)
    pad_w = max(0, DETECTOR_SIZE - width)
    padded = jnp.pad(flat, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    batch = tile_crops(padded, [[int(v) for v in tile] for tile in tiles], DETECTOR_SIZE)
    raw = self.detector(batch * 2.0 - 1.0)
    n, count = flat.shape[0], len(tiles)
    regressors = raw["Identity"].reshape(n, count, -1, 12)
    logits = raw["Identity_1"].reshape(n, count * regressors.shape[2])
    anchors = jnp.asarray(self.anchors, jnp.float32)  # [A, 2] centres in [0, 1] of a tile
    where = jnp.asarray(tiles)[None, :, None, :]  # unscaled tiles: extent = the input size
    centre, size, points = decode_anchors(regressors, anchors[None, None], where[..., :2],
                                          where[..., 2:], DETECTOR_SIZE)
    boxes = jnp.concatenate([centre - size / 2, centre + size / 2], -1).reshape(n, -1, 4)
    points = points.reshape(n, -1, 4, 2)

    def pick(logit, box, point):
      best, order = jax.lax.top_k(logit, min(self.candidates, logit.shape[0]))
      box, point = box[order], point[order]
      keep = greedy_keep(box, jax.nn.sigmoid(best) >= self.min_score, self.iou_threshold)
      # Slots: the kept candidates first, in score order, then the rest as empty slots.
      rank = jnp.argsort(~keep, stable=True)[:self.max_people]
      return keep[rank], box[rank], point[rank]

    valid, box, point = jax.vmap(pick)(jax.lax.stop_gradient(logits),
                                       jax.lax.stop_gradient(boxes),
                                       jax.lax.stop_gradient(points))
    hips, circle = point[..., 0, :], point[..., 1, :]
    radius = jnp.linalg.norm(circle - hips, axis=-1)
    # MediaPipe's AlignmentPointsRectsCalculator: hips -> circle point upright (90 degrees).
    angle = 0.5 * math.pi - jnp.arctan2(-(circle[..., 1] - hips[..., 1]),
                                        circle[..., 0] - hips[..., 0])
    angle = angle - 2 * math.pi * jnp.floor((angle + math.pi) / (2 * math.pi))
    side = jnp.maximum(2.0 * radius * 1.25, 1.0)
    roi = jnp.stack([hips[..., 0], hips[..., 1], side, angle], axis=-1)
    return valid, box, roi

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = flatten(frames)
    valid, boxes, roi = self.detect(jax.lax.stop_gradient(flat))
    crops = jax.vmap(lambda image, r: sample_regions(image, r, LANDMARK_SIZE))(flat, roi)
    p = self.max_people
    raw = self.landmarker(crops.reshape((-1, LANDMARK_SIZE, LANDMARK_SIZE, 3)))
    points = raw["Identity"].reshape(-1, 39, 5)[:, :BODY_KEYPOINTS, :2]
    landmarks = region_to_frame(roi.reshape(-1, 4), points, LANDMARK_SIZE)
    shape = lead + (p,)
    return {"landmarks": landmarks.reshape(shape + (BODY_KEYPOINTS, 2)),
            "presence": raw["Identity_1"].reshape(shape),
            "valid": valid.reshape(shape),
            "boxes": boxes.reshape(shape + (4,)),
            "roi": roi.reshape(shape + (4,))}


def people(outputs: dict, *, min_presence: float = 0.5) -> dict[str, np.ndarray]:
  """One frame's people (`outputs` without leading axes): `landmarks [M, 33, 2]`, `boxes
  [M, 4]`, `presence [M]`, of the slots that hold a detection whose pose the landmark model
  says is present (MediaPipe drops the others: on vtest they are traffic cones and a bag)."""
  valid = np.asarray(outputs["valid"], bool) & (np.asarray(outputs["presence"]) >= min_presence)
  return {"landmarks": np.asarray(outputs["landmarks"])[valid],
          "boxes": np.asarray(outputs["boxes"])[valid],
          "presence": np.asarray(outputs["presence"])[valid]}
