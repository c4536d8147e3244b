"""Differentiable accuracy proxies: scalar functions of a model's raw outputs.

Accuracy needs ground truth, which a live system does not have; OneAdapt ascends a proxy computed
from the DNN's own output instead. Each proxy here is a sum or mean over every frame of the
segment (and any leading batch axes), so larger is better and `jax.grad` of it is AccGrad.
`tests/test_proxies.py` checks that each one ranks settings as its real metric does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import models


def detection(outputs: dict) -> jax.Array:
  """Soft count of confident detections, the paper's proxy: sum of sigmoid(20 (score - 0.5)).

  Args:
    outputs: a detector's raw outputs with `scores` (logits) `[..., anchors]`, e.g. BlazeFace's.

  The sum runs over every anchor (BlazeFace fires several anchors per face, so the count is a
  weighted number of faces, not the number after suppression); it rises with each face's
  confidence, which is what the input quality changes.
  """
  scores = jax.nn.sigmoid(outputs["scores"])
  return jnp.sum(jax.nn.sigmoid(20.0 * (scores - 0.5)))


def soft_count(outputs: dict, *, top_k: int = 100, iou_threshold: float = 0.6,
               max_area: float = 0.08, sharpness: float = 20.0, centre: float = 0.5,
               floor: float = 0.0) -> jax.Array:
  """The paper's proxy as the paper's code computes it: over each frame's detections after
  non-maximum suppression, kept if smaller than `max_area` of the frame, the sum of
  sigmoid(20 (score - 0.5)). `sharpness` and `centre` replace the 20 and the 0.5, and `floor`
  leaves out the candidates scored under it (`gentle_count`).

  Args:
    outputs: a detector's outputs with `scores` (logits) `[..., tiles, anchors]` and `boxes`
      `[..., tiles, anchors, 4]` (x0, y0, x1, y1) in `[0, 1]` of the frame, e.g.
      `models.PedestrianDetector`'s.

  The suppression (the `top_k` best candidates of a frame, greedy at `iou_threshold`) and the
  size filter choose which detections count and are held constant in the gradient; the scores
  of the chosen ones carry it. Unlike `detection`, a person counts once however many anchors
  fire on it.
  """
  logits = outputs["scores"]
  boxes = outputs["boxes"]
  logits = logits.reshape((-1, logits.shape[-2] * logits.shape[-1]))
  boxes = jax.lax.stop_gradient(boxes.reshape((logits.shape[0], -1, 4)))

  def frame(logit, box):
    best, order = jax.lax.top_k(jax.lax.stop_gradient(logit), min(top_k, logit.shape[-1]))
    chosen = box[order]
    area = (chosen[:, 2] - chosen[:, 0]) * (chosen[:, 3] - chosen[:, 1])
    kept = models.greedy_keep(chosen, jnp.isfinite(best), iou_threshold) & (area <= max_area)
    kept = kept & (jax.nn.sigmoid(best) >= floor)
    score = jax.nn.sigmoid(logit[order])
    return jnp.sum(jnp.where(kept, jax.nn.sigmoid(sharpness * (score - centre)), 0.0))

  return jnp.sum(jax.vmap(frame)(logits, boxes))


def gentle_count(outputs: dict) -> jax.Array:
  """`soft_count` with slope below the detection threshold: sigmoid(8 (score - 0.25)) over the
  candidates scored at least 0.1.

  The paper's sigmoid(20 (score - 0.5)) is flat for scores under about 0.25, and on vtest the
  cheapest settings leave every person under that: its gradient there is 30 to 38 times smaller
  than at the middle rung, where the real accuracy rises far more slowly (README, "Lambda
  calibrated per stream"). This one is steepest at 0.25 and still has two fifths of that slope at
  0.5; the floor keeps the background candidates (0.06 to 0.09 on vtest) out.
  """
  return soft_count(outputs, sharpness=8.0, centre=0.25, floor=0.1)


def expected_f1(outputs: dict) -> jax.Array:
  """The F1 a detector expects of its own detections, averaged over frames.

  Args:
    outputs: a detector's raw outputs with `scores` (logits) `[..., tiles, anchors]`, e.g.
      BlazeFace's.

  Each anchor is a face with its probability `p`; the detections are the anchors with
  `p > 0.5`. The expected true positives are then `sum(p d)`, and F1's denominator is the
  number of detections plus the expected number of faces, `sum(d) + sum(p)`. One confident
  true negative is added to both, so a frame the detector is sure is empty scores near 1 and
  a frame full of doubtful anchors near 0. The detections `d` are held constant in the
  gradient. Counting anchors, not faces after suppression, keeps it differentiable; both
  counts scale with the anchors a face fires, so their ratio does not depend on that number.

  The paper's soft count (`detection`) only rewards confidence. This proxy also penalises
  doubt. On carphone, over 5 resolutions x 5 QPs of real x264 encodes, its Spearman
  correlation with F1 is 0.80 to 0.89 per segment, against 0.38 to 0.87 for the soft count
  (`oneadapt_jax.proxy_check`).
  """
  p = jax.nn.sigmoid(outputs["scores"])
  p = p.reshape(p.shape[:-2] + (-1,))  # [..., tiles * anchors] of one frame
  detected = jax.lax.stop_gradient((p > 0.5).astype(p.dtype))
  true_positives = jnp.sum(p * detected, axis=-1)
  denominator = jnp.sum(detected, axis=-1) + jnp.sum(p, axis=-1)
  return jnp.mean((2.0 * true_positives + 1.0) / (denominator + 1.0))


def segmentation(outputs: dict) -> jax.Array:
  """The IoU the model expects of its own mask, averaged over frames.

  Args:
    outputs: `{"mask": [..., H, W]}` person probabilities.

  If each pixel were a person with the probability `p` the model gives it, the mask `m = p > 0.5`
  would have an expected intersection of `sum(p m)` with the truth and an expected union of about
  `sum(m) + sum(p (1 - m))`. Their ratio is this proxy. Unlike mean decisiveness over all
  pixels, it is measured relative to the person's size, as IoU is; a small person's blurred
  outline counts as much as a large one's. The mask `m` is held constant in the gradient, so
  the gradient raises `p` inside the mask and lowers it outside. A frame with no person in its
  mask scores 0.

  On carphone, over 5 resolutions x 5 QPs of real x264 encodes, its Spearman correlation with
  the IoU against the best-quality mask is 0.74 to 0.89 per segment; the mean decisiveness
  `mean((2 p - 1) ** 2)` it replaces gave 0.41 to 0.69 (`oneadapt_jax.proxy_check`).
  """
  p = outputs["mask"]
  inside = jax.lax.stop_gradient((p > 0.5).astype(p.dtype))
  intersection = jnp.sum(p * inside, axis=(-2, -1))
  union = jnp.sum(inside, axis=(-2, -1)) + jnp.sum(p * (1.0 - inside), axis=(-2, -1))
  return jnp.mean(intersection / jnp.maximum(union, 1e-6))


def keypoints(outputs: dict) -> jax.Array:
  """Mean log-probability that the face mesh sees a face, `mean(log sigmoid(presence))`.

  Args:
    outputs: a face mesh's outputs with `{"presence": [...] logits}`, e.g. `models.FaceLandmark`.

  `models.FaceLandmark` runs the mesh on the face BlazeFace finds, as MediaPipe does. The
  presence score is thus the mesh's own judgement of whether its crop shows a face it can
  fit. Run on the whole frame instead, the face was too small a part of the input: the
  best-quality frames of carphone scored about 0.1, and the score ranked settings poorly
  (Spearman 0.77 down to -0.40 per segment). On the detected face it is certain at best quality
  (logits about 25), and it ranks settings as PCK does: Spearman 0.89 to 0.94 per carphone
  segment. The log keeps the gradient non-zero where the probability itself rounds to 1 in
  float32; it is the logit itself when the face is in doubt.
  """
  return jnp.mean(jax.nn.log_sigmoid(outputs["presence"]))


def body_presence(outputs: dict) -> jax.Array:
  """Multi-person keypoints: the sum, over the people the detector found, of the landmark
  model's pose-presence probability (a soft count of the people whose pose it can fit).

  Args:
    outputs: `models.BodyLandmarks` outputs: `presence [..., P]` (probabilities) and
      `valid [..., P]` (the slots holding a detection).

  As for the face mesh (`keypoints`), the landmark model's own judgement of its crop; summed, not
  averaged, so that a person lost to compression lowers it as a person found raises it. On vtest
  (every 10th segment, 5 resolutions x 5 QPs of x264) its Spearman with multi-person PCK is 0.78
  to 0.94 per segment, mean 0.88; `body_log_presence`, the mean form, 0.38 to 0.87, mean 0.62.
  """
  valid = jax.lax.stop_gradient(outputs["valid"].astype(outputs["presence"].dtype))
  return jnp.sum(valid * outputs["presence"])


def body_log_presence(outputs: dict) -> jax.Array:
  """The mean, over the people found, of the log of the pose-presence probability (`keypoints`
  for several people); an empty frame scores 0."""
  valid = jax.lax.stop_gradient(outputs["valid"].astype(outputs["presence"].dtype))
  logs = jnp.log(jnp.clip(outputs["presence"], 1e-6, 1.0))
  return jnp.mean(jnp.sum(valid * logs, -1) / jnp.maximum(jnp.sum(valid, -1), 1.0))


def confidence(probabilities: jax.Array) -> jax.Array:
  """The mean probability of the recognised class, over the last axis's classes."""
  return jnp.mean(jnp.max(probabilities, axis=-1))


def keyword(logits: jax.Array) -> jax.Array:
  """Keyword spotting: the softmax probability of the recognised word (`logits [..., words]`)."""
  return confidence(jax.nn.softmax(logits, axis=-1))


def ground(probabilities: jax.Array) -> jax.Array:
  """Per-point classification: the mean probability of each point's class (`[..., N, classes]`)."""
  return confidence(probabilities)
