"""Differentiable accuracy proxies: scalar functions of a model's raw outputs.

Accuracy needs ground truth, which a live system does not have; OneAdapt ascends a proxy computed
from the DNN's own output instead. Each proxy here is a sum or mean over every frame of the
segment (and any leading batch axes), so larger is better and `jax.grad` of it is AccGrad.
`tests/test_proxies.py` checks that each one ranks settings as its real metric does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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


def segmentation(outputs: dict) -> jax.Array:
  """Mean decisiveness of the mask, `mean((2 p - 1) ** 2)` over pixels and frames.

  Args:
    outputs: `{"mask": [..., H, W]}` person probabilities.

  A worse input leaves more pixels undecided (p near 0.5), and those are the pixels whose label
  flips against the best-quality mask, i.e. where the IoU is lost.
  """
  p = outputs["mask"]
  return jnp.mean((2.0 * p - 1.0) ** 2)


def keypoints(outputs: dict) -> jax.Array:
  """Mean face-presence probability of a face-mesh model (`{"presence": [...] logits}`)."""
  return jnp.mean(jax.nn.sigmoid(outputs["presence"]))


def confidence(probabilities: jax.Array) -> jax.Array:
  """The mean probability of the recognised class, over the last axis's classes."""
  return jnp.mean(jnp.max(probabilities, axis=-1))


def keyword(logits: jax.Array) -> jax.Array:
  """Keyword spotting: the softmax probability of the recognised word (`logits [..., words]`)."""
  return confidence(jax.nn.softmax(logits, axis=-1))


def ground(probabilities: jax.Array) -> jax.Array:
  """Per-point classification: the mean probability of each point's class (`[..., N, classes]`)."""
  return confidence(probabilities)
