"""Boxes (x0, y0, x1, y1): their IoU and greedy non-maximum suppression inside a JAX graph."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def box_iou(a, b):
  """Intersection over union `[N, M]` of boxes `a [N, 4]` and `b [M, 4]` (x0, y0, x1, y1).
  Works on NumPy arrays and JAX arrays alike."""
  xp = jnp if isinstance(a, jax.Array) or isinstance(b, jax.Array) else np
  x0 = xp.maximum(a[:, None, 0], b[None, :, 0])
  y0 = xp.maximum(a[:, None, 1], b[None, :, 1])
  x1 = xp.minimum(a[:, None, 2], b[None, :, 2])
  y1 = xp.minimum(a[:, None, 3], b[None, :, 3])
  inter = xp.clip(x1 - x0, 0, None) * xp.clip(y1 - y0, 0, None)
  area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
  area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  return inter / xp.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def greedy_keep(boxes: jax.Array, valid: jax.Array, iou_threshold: float) -> jax.Array:
  """Greedy non-maximum suppression with fixed shapes, for use under `jit` and `vmap`: which of
  `boxes [K, 4]`, sorted best first, are kept (`[K]` bool). A box is kept if it is `valid` and
  overlaps no earlier kept box by more than `iou_threshold`."""
  overlaps = box_iou(boxes, boxes) > iou_threshold
  earlier = jnp.arange(boxes.shape[0])[None, :] < jnp.arange(boxes.shape[0])[:, None]

  def step(i, keep):
    return keep.at[i].set(valid[i] & ~jnp.any(keep & overlaps[i] & earlier[i]))

  return jax.lax.fori_loop(0, boxes.shape[0], step, jnp.zeros_like(valid))
