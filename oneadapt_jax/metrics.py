"""Real accuracy, against the same DNN's output on the best-quality input (as in the paper).

Each metric takes one frame's post-processed output and the reference's and returns a float in
`[0, 1]`; `segment_mean` averages a metric over a segment's frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import models


def match_boxes(boxes: np.ndarray, reference: np.ndarray, *, iou: float = 0.5) -> list:
  """Greedy one-to-one matching of `boxes [N, 4]` to `reference [M, 4]` (x0, y0, x1, y1), best
  IoU first, pairs at IoU at least `iou`: a list of `(i, j)`."""
  if len(boxes) == 0 or len(reference) == 0:
    return []
  overlaps = models.box_iou(boxes, reference)
  pairs = []
  while overlaps.size and overlaps.max() >= iou:
    i, j = np.unravel_index(np.argmax(overlaps), overlaps.shape)
    pairs.append((int(i), int(j)))
    overlaps[i, :] = -1
    overlaps[:, j] = -1
  return pairs


def detection(boxes: np.ndarray, reference: np.ndarray, *, iou: float = 0.5) -> float:
  """F1 of `boxes [N, 4]` against `reference [M, 4]` (x0, y0, x1, y1), greedy matching at IoU.

  Both empty is a perfect 1.0 (nothing to find, nothing found).
  """
  boxes, reference = np.asarray(boxes).reshape(-1, 4), np.asarray(reference).reshape(-1, 4)
  if len(boxes) == 0 and len(reference) == 0:
    return 1.0
  matched = len(match_boxes(boxes, reference, iou=iou))
  if matched == 0:
    return 0.0
  precision, recall = matched / len(boxes), matched / len(reference)
  return 2 * precision * recall / (precision + recall)


def segmentation(mask: np.ndarray, reference: np.ndarray) -> float:
  """IoU of two boolean person masks `[H, W]` (both empty: 1.0)."""
  mask, reference = np.asarray(mask, bool), np.asarray(reference, bool)
  union = np.logical_or(mask, reference).sum()
  return 1.0 if union == 0 else float(np.logical_and(mask, reference).sum() / union)


def keypoints(points: np.ndarray, reference: np.ndarray, *, fraction: float = 0.05) -> float:
  """PCK: share of landmarks `[K, 2]` within `fraction` of the reference face box's size."""
  points, reference = np.asarray(points)[:, :2], np.asarray(reference)[:, :2]
  extent = reference.max(axis=0) - reference.min(axis=0)
  threshold = fraction * float(max(extent.max(), 1e-6))
  return float(np.mean(np.linalg.norm(points - reference, axis=-1) <= threshold))


def body_keypoints(people: dict, reference: dict, *, iou: float = 0.5,
                   fraction: float = 0.05) -> float:
  """Multi-person PCK: people matched to the reference's by box (greedy, IoU at least `iou`),
  each matched pair scored by `keypoints` (the share of the 33 keypoints within `fraction` of the
  reference person's keypoint extent), summed and divided by the larger head count, so a person
  missed or invented scores 0. No one in either: 1.0.

  Args:
    people, reference: `{"landmarks": [M, 33, 2], "boxes": [M, 4]}` of one frame
      (`models.postprocess("blazepose", ...)`).
  """
  ours = np.asarray(people["boxes"]).reshape(-1, 4)
  theirs = np.asarray(reference["boxes"]).reshape(-1, 4)
  if len(ours) == 0 and len(theirs) == 0:
    return 1.0
  total = sum(keypoints(people["landmarks"][i], reference["landmarks"][j], fraction=fraction)
              for i, j in match_boxes(ours, theirs, iou=iou))
  return float(total / max(len(ours), len(theirs)))


def keyword(logits: np.ndarray, reference: np.ndarray) -> float:
  """1.0 if the recognised word (argmax of `logits`) is the reference's, else 0.0."""
  return float(np.argmax(logits) == np.argmax(reference))


def miou(ours: np.ndarray, theirs: np.ndarray, classes: int) -> float:
  """mIoU over `classes` of two label arrays (a class absent from both counts as a perfect 1)."""
  scores = []
  for k in range(classes):
    union = np.sum((ours == k) | (theirs == k))
    scores.append(1.0 if union == 0 else np.sum((ours == k) & (theirs == k)) / union)
  return float(np.mean(scores))


def word_error_rate(words: Sequence[str], reference: Sequence[str]) -> float:
  """Word error rate: the edit distance (substitutions, insertions, deletions) from `reference`
  to `words` over the reference's length; an empty reference gives 0 if `words` is empty, else 1.
  """
  words, reference = list(words), list(reference)
  if not reference:
    return float(bool(words))
  row = np.arange(len(words) + 1)
  for i, ref in enumerate(reference, 1):
    previous, row = row, np.empty_like(row)
    row[0] = i
    for j, word in enumerate(words, 1):
      row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (word != ref))
  return float(row[-1]) / len(reference)


def ground(probabilities: np.ndarray, reference: np.ndarray) -> float:
  """mIoU over the classes of per-point `probabilities [N, classes]` against the reference's
  classification (a class absent from both counts as a perfect 1)."""
  return miou(np.argmax(probabilities, -1), np.argmax(reference, -1),
              np.shape(probabilities)[-1])


def segment_mean(metric: Callable, outputs: Sequence, references: Sequence) -> float:
  return float(np.mean([metric(o, r) for o, r in zip(outputs, references)]))
