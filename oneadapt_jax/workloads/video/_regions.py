"""DDS's feedback regions (Du et al., SIGCOMM'20): what the server asks the camera to send again.

The server runs the detector on a low-quality pass and asks again, at high quality, about the
regions it is unsure of: candidates scoring between `LOW_THRESHOLD` and `HIGH_THRESHOLD`, no
larger than `MAX_AREA` of the frame (DDS's `low_threshold`, `high_threshold` and
`max_object_size`). The camera sends those regions' macroblocks at the high QP, the rest of the
frame black; the server pastes them into the low-quality frame and runs the detector again on
the frames that had any. Its final detections are the second pass's, plus the first pass's
confident ones (at least `HIGH_THRESHOLD`) that the second pass does not overlap.

DDS's later version asks about region proposals of Faster R-CNN's RPN; the single-stage
detectors here have none, so the candidates between the thresholds stand in for them (DDS's
first version does exactly this).
"""

from __future__ import annotations

import numpy as np

import models
from oneadapt_jax.codec import MACROBLOCK, macroblock_grid

#: The detectors' own score threshold (their post-processing keeps what scores at least this).
DETECTION_THRESHOLD = 0.5
LOW_THRESHOLD = 0.3
HIGH_THRESHOLD = 0.8
MAX_AREA = 0.3


def regions_to_query(detections: models.Detections, frame_size: tuple[int, int], *,
                     low: float = LOW_THRESHOLD, high: float = HIGH_THRESHOLD,
                     max_area: float = MAX_AREA) -> np.ndarray:
  """The boxes (x0, y0, x1, y1 pixels) of one frame's candidates the server is unsure of."""
  height, width = frame_size
  boxes, scores = np.asarray(detections.boxes, np.float64), np.asarray(detections.scores)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(height * width)
  return boxes[(scores >= low) & (scores < high) & (area <= max_area)].reshape(-1, 4)


def macroblock_mask(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """`bool [ceil(H / 16), ceil(W / 16)]`: the macroblocks any box touches."""
  height, width = frame_size
  mask = np.zeros(macroblock_grid(height, width), bool)
  for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
    x0, x1 = np.clip([x0, x1], 0, width)
    y0, y1 = np.clip([y0, y1], 0, height)
    if x1 <= x0 or y1 <= y0:
      continue
    mask[int(y0 // MACROBLOCK):int(np.ceil(y1 / MACROBLOCK)),
         int(x0 // MACROBLOCK):int(np.ceil(x1 / MACROBLOCK))] = True
  return mask


def pixel_mask(mask: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
  """A macroblock mask as `bool [H, W]`."""
  height, width = frame_size
  return np.repeat(np.repeat(mask, MACROBLOCK, 0), MACROBLOCK, 1)[:height, :width]


def merge(second: models.Detections, first: models.Detections, *,
          high: float = HIGH_THRESHOLD, iou: float = 0.5) -> np.ndarray:
  """DDS's final boxes of one frame: the second pass's, plus the first pass's confident ones
  that no second-pass box overlaps by more than `iou`."""
  kept = np.asarray(second.boxes, np.float64).reshape(-1, 4)
  confident = np.asarray(first.boxes, np.float64).reshape(-1, 4)[np.asarray(first.scores) >= high]
  if len(kept) and len(confident):
    confident = confident[~np.any(models.box_iou(confident, kept) > iou, axis=1)]
  return np.concatenate([kept, confident])
