"""LiDAR: per-point ground classification on held-out autzen tiles, one tile per second.

Knobs, in the sender's order: `point_range` -> `point_density` -> `point_quantization` (the last
counts the bytes of the points that reach it). The real sender (`send`): the points within the
radius of the tile's centre whose priority is under the density (`knobs.points_sent`, the knob's
own rule), coordinates on the grid, as a real LAZ file (laspy + lazrs) whose scale is the step.
Bytes: that file's size. The server (`GroundMap`) classifies the points sent and maps every
point of the tile from them. Proxy: the mean over the tile's points of the probability of their
class (`proxies.ground`); metric: mIoU (ground, not ground) against the classification of the
full-quality tile (`metrics.ground`).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx

import knobs
import models
from models import trained
from oneadapt_jax import lidar, metrics, proxies
from oneadapt_jax.core import Config, SentWorkload


def knob_chain() -> knobs.Knob:
  """point_range -> point_density -> point_quantization; the last counts the bytes."""
  return knobs.chain(
      point_range=knobs.scale_cost(knobs.point_range(centre=(lidar.TILE / 2, lidar.TILE / 2)),
                                   0.0, unit="bytes"),
      point_density=knobs.scale_cost(knobs.point_density(), 0.0, unit="bytes"),
      point_quantization=knobs.point_quantization())


def send(cloud: knobs.PointCloud, config: Config) -> tuple[knobs.PointCloud, int]:
  """`(the cloud as the server has it: points on the grid, mask 1 where sent; LAZ bytes)`."""
  points, mask = np.asarray(cloud.points), np.asarray(cloud.mask)
  centre = lidar.TILE / 2
  within = np.hypot(points[:, 0] - centre, points[:, 1] - centre) <= config["point_range"]
  sent = within & knobs.points_sent(len(mask), config["point_density"]) & (mask > 0)
  step = config["point_quantization"]
  shown = points.copy()
  shown[:, :3] = np.round(points[:, :3] / step) * step
  num_bytes = len(lidar.encode_laz(shown[sent], step))
  return knobs.PointCloud(shown.astype(np.float32), sent.astype(np.float32)), num_bytes


class GroundMap(nnx.Module):
  """The LiDAR server: PointNet on the points sent, then every point's class from them."""

  def __init__(self, pointnet: models.PointNet, *, sigma: float = 3.0):
    self.pointnet = pointnet
    self.sigma = sigma

  def __call__(self, cloud) -> jax.Array:
    probabilities = jax.nn.softmax(self.pointnet(cloud), axis=-1)
    return models.fill_unsent(cloud, probabilities, sigma=self.sigma)


def load_model() -> GroundMap:
  """The trained PointNet behind `GroundMap`, from the verified cache (`make assets`)."""
  pointnet = models.PointNet(6, 2, extent=lidar.TILE, rngs=nnx.Rngs(0))
  return GroundMap(trained.restore("pointnet", pointnet))


@dataclasses.dataclass(eq=False)
class LidarWorkload(SentWorkload):
  """Ground classification on LiDAR tiles, sent as LAZ."""

  kind = "lidar"
  task = "ground classification"

  def send(self, index: int, config: Config):
    return send(self.segments[index], config)


def build(*, max_segments: int | None = None) -> LidarWorkload:
  """The LiDAR workload: the held-out autzen tiles (`oneadapt_jax.lidar.split`)."""
  tiles = [t.cloud for t in lidar.split()[1]][:max_segments]
  return LidarWorkload("autzen_trim.laz held-out tiles", tiles, knob_chain(), load_model(),
                       proxies.ground, metrics.ground)
