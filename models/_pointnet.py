"""PointNet (Qi et al., CVPR 2017) for per-point classification, trained here on aerial LiDAR.

`PointNet(cloud)` takes a `knobs.PointCloud` (`points [..., N, F]`, x, y, z in metres first;
`mask [..., N]`) and returns per-point class logits `[..., N, classes]` for the points sent.
A shared per-point MLP makes local features; a max pool over the points sent (each point's
features weighted by its mask, so a point with mask 0 takes no part; ReLU features are >= 0)
makes the tile's global feature; a second per-point MLP classifies each point from both.
Coordinates are centred on the tile: x, y by `extent / 2`, z by the masked mean height; each
point also sees its height above the lowest and the mean point sent within `radius / 2`,
`radius` and `2 * radius` metres.

`fill(cloud, probabilities, sigma)`: the classification of every point of the full cloud from
the points sent. A point that was sent keeps its own; one that was not takes the
Gaussian-weighted (in x, y) mean of the points sent around it, which a hard mask makes the
server's nearest-neighbour map lookup and a soft mask makes differentiable in the mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class PointNet(nnx.Module):
  def __init__(self, features: int, classes: int, *, extent: float = 80.0, radius: float = 8.0,
               width: tuple[int, int, int] = (64, 128, 256), rngs: nnx.Rngs):
    w1, w2, w3 = width
    self.extent = extent
    self.radius = radius
    self.local1 = nnx.Linear(features + 6, w1, rngs=rngs)
    self.local2 = nnx.Linear(w1, w2, rngs=rngs)
    self.local3 = nnx.Linear(w2, w3, rngs=rngs)
    self.head1 = nnx.Linear(w1 + w3, w2, rngs=rngs)
    self.head2 = nnx.Linear(w2, w1, rngs=rngs)
    self.head3 = nnx.Linear(w1, classes, rngs=rngs)

  def __call__(self, cloud) -> jax.Array:
    points, mask = cloud
    weight = mask[..., None]
    height = jnp.sum(points[..., 2:3] * weight, -2, keepdims=True) / (
        jnp.sum(weight, -2, keepdims=True) + 1e-6)
    z = points[..., 2:3]
    context = []
    for radius in (self.radius / 2, self.radius, 2 * self.radius):
      low, mean = local_heights(cloud, radius=radius)
      context += [(z - low[..., None]) / 5.0, (z - mean[..., None]) / 5.0]
    centred = jnp.concatenate([(points[..., :2] - self.extent / 2) / (self.extent / 2),
                               (z - height) / 10.0, *context, points[..., 3:]], axis=-1)
    local = nnx.relu(self.local1(centred))
    deep = nnx.relu(self.local3(nnx.relu(self.local2(local))))
    pooled = jnp.max(deep * weight, axis=-2, keepdims=True)
    both = jnp.concatenate([local, jnp.broadcast_to(pooled, deep.shape)], axis=-1)
    return self.head3(nnx.relu(self.head2(nnx.relu(self.head1(both)))))


def _pairwise(xy: jax.Array) -> jax.Array:
  return jnp.sum((xy[..., :, None, :] - xy[..., None, :, :]) ** 2, axis=-1)


def local_heights(cloud, *, radius: float) -> tuple[jax.Array, jax.Array]:
  """`(lowest, mean)` height of the points sent within `radius` metres (x, y) of each point
  (the point itself included): the local context PointNet's global pool cannot see, and what
  tells ground from roofs and canopy."""
  points, mask = cloud
  z = points[..., 2]
  near = (_pairwise(points[..., :2]) <= radius**2).astype(z.dtype)
  eye = jnp.eye(z.shape[-1], dtype=z.dtype).reshape((1,) * (near.ndim - 2) + near.shape[-2:])
  near = jnp.maximum(near * mask[..., None, :], eye)
  # A point not sent (or out of reach) counts as 1 km up: never the lowest.
  lowest = jnp.min(z[..., None, :] + (1.0 - near) * 1000.0, axis=-1)
  mean = (near @ z[..., None])[..., 0] / jnp.sum(near, axis=-1)
  return lowest, mean


def fill(cloud, probabilities: jax.Array, *, sigma: float = 3.0) -> jax.Array:
  """Per-point class probabilities `[..., N, classes]` for every point of `cloud`, the points
  not sent taking a Gaussian-weighted mean (in x, y, width `sigma` metres) of those sent."""
  points, mask = cloud
  xy = points[..., :2]
  d2 = _pairwise(xy)
  others = 1.0 - jnp.eye(xy.shape[-2], dtype=xy.dtype)
  kernel = jnp.exp(-d2 / (2 * sigma**2)) * others.reshape((1,) * (d2.ndim - 2) + others.shape)
  weights = kernel * mask[..., None, :]
  classes = probabilities.shape[-1]
  neighbours = (weights @ probabilities + 1e-6 / classes) / (
      jnp.sum(weights, -1, keepdims=True) + 1e-6)
  sent = mask[..., None]
  return sent * probabilities + (1.0 - sent) * neighbours
