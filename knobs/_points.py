"""Point-cloud knobs: point density and coordinate quantization.

A point cloud is a `PointCloud(points, mask)`: `points` `float32 [..., N, F]` whose first three
features are x, y, z in metres, and `mask` `float32 [..., N]` in `[0, 1]` (1: the point is sent;
clouds of different sizes are padded with mask 0). A knob returns a cloud of the same shapes.

- `point_density`: keeps the points whose fixed priority is below the density. The priority of
  point `i` is `frac((i + 1) * golden ratio)`, a low-discrepancy sequence, so any density keeps
  an even spread of the cloud's order (a scan's order is spatial). Forward: the hard decision.
  Backward: a sigmoid in `density - priority`.
- `point_range`: sends only the points within `radius` metres (in x, y) of a centre, a region
  of interest (or, centred on the sensor, a range limit). Backward: a sigmoid in
  `radius - distance`.
- `point_quantization`: x, y, z rounded to a grid of `step` metres (what a LAS/LAZ file's scale
  does). Backward: identity in the points, and the rounding error scaled with the step in the
  setting. Cost: the bytes of the points sent, `sum(mask) * (3 * log2(extent / step) +
  extra_bits) / 8`, so placed last in a chain it counts the whole stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base

GOLDEN = 0.6180339887498949


class PointCloud(NamedTuple):
  """`points [..., N, F]` (x, y, z in metres first) and `mask [..., N]` in `[0, 1]`."""

  points: jax.Array
  mask: jax.Array


def check_points(cloud, *, name: str = "cloud") -> None:
  """Raises a `ValueError` naming the problem if `cloud` is not a valid `PointCloud`."""
  if not isinstance(cloud, PointCloud):
    raise ValueError(f"{name} must be a knobs.PointCloud(points, mask), got {type(cloud).__name__}")
  points, mask = cloud
  for part, arr in (("points", points), ("mask", mask)):
    if not hasattr(arr, "shape") or not jnp.issubdtype(arr.dtype, jnp.floating):
      raise ValueError(f"{name}.{part} must be a floating-point array, got "
                       f"{getattr(arr, 'dtype', type(arr).__name__)}")
  if points.ndim < 2 or points.shape[-1] < 3:
    raise ValueError(f"{name}.points must be [..., N, F] with F >= 3 (x, y, z first), got shape "
                     f"{tuple(points.shape)}")
  if points.shape[-2] == 0:
    raise ValueError(f"{name} has no points (N = 0)")
  if tuple(mask.shape) != tuple(points.shape[:-1]):
    raise ValueError(f"{name}.mask must have shape {tuple(points.shape[:-1])} (points without "
                     f"the feature axis), got {tuple(mask.shape)}")
  if _base._is_concrete(points) and _base._is_concrete(mask) and not _base._VALUES_CHECKED.get():
    for part, arr in (("points", points), ("mask", mask)):
      values = np.asarray(arr)
      if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"{name}.{part} contains NaN or infinite values (first at index "
                         f"{tuple(bad)})")
    m = np.asarray(mask)
    if m.size and (m.min() < 0 or m.max() > 1):
      raise ValueError(f"{name}.mask must be in [0, 1], got [{m.min():.4g}, {m.max():.4g}]")


def _dropping_knob(values, keep_of, *, name: str, round_rule: str) -> _base.Knob:
  """A knob that only changes which points are sent: `keep_of(setting, cloud)` is the new mask;
  cost: points sent (unit ``"points"``)."""
  @jax.jit
  def apply(setting, cloud):
    return PointCloud(cloud.points, keep_of(setting, cloud))

  @jax.jit
  def cost(setting, cloud):
    return jnp.sum(keep_of(setting, cloud))

  return _base.ladder_knob(values, apply, cost, check=check_points, name=name, unit="points",
                           round_rule=round_rule)


def priorities(num: int) -> np.ndarray:
  """The fixed sending priority of each of `num` points, in `(0, 1)`: lowest is sent first."""
  return np.mod((np.arange(num) + 1) * GOLDEN, 1.0)


def points_sent(num: int, density):
  """The send rule of `point_density`: which of `num` points a density sends (those whose
  `priorities` are under it). The knob's forward pass and the real sender both use it."""
  return priorities(num) < density


def point_density(
    *,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    temperature: float = 0.02,
    round_rule: str = "up",
) -> _base.Knob:
  """Point-density knob: send a fraction of the points, evenly spread over the cloud's order.

  Cost: points sent per call (unit ``"points"``).

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> cloud = knobs.PointCloud(jnp.zeros((10, 3)), jnp.ones(10))
    >>> knob = knobs.point_density()
    >>> float(knob.cost(jnp.float32(0.6), cloud))   # density 0.5
    5.0

  Args:
    fractions: the discrete densities, cheapest first, in `(0, 1]`.
    temperature: width of the backward pass's sigmoid, in priority.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(fractions, name="point_density")
  if values[0] <= 0 or values[-1] > 1 or values[-1] < values[0]:
    raise ValueError(f"point_density: fractions must increase within (0, 1], got "
                     f"{tuple(fractions)}")

  def keep_of(setting, cloud):
    fraction = _base.ladder_to_physical(values, _base.as_setting(setting, cloud.mask.dtype))
    rank = jnp.asarray(priorities(cloud.mask.shape[-1]), cloud.mask.dtype)
    hard = rank < fraction  # `points_sent`, at the priorities' float32 values
    soft = jax.nn.sigmoid((fraction - rank) / temperature)
    return cloud.mask * _base.straight_through(soft, hard)

  return _dropping_knob(values, keep_of, name="point_density", round_rule=round_rule)


def point_quantization(
    *,
    steps: Sequence[float] = (2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.01),
    extent: float = 1024.0,
    extra_bits: float = 32.0,
    round_rule: str = "up",
) -> _base.Knob:
  """Coordinate quantization: x, y, z on a grid of `step` metres (straight-through rounding).

  Cost: bytes of the points sent (unit ``"bytes"``): each point costs `3 * log2(extent / step)`
  bits of coordinates plus `extra_bits` (intensity, returns, class) and counts by its mask.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> cloud = knobs.PointCloud(jnp.asarray([[0.3, 1.26, -0.7]]), jnp.ones(1))
    >>> knobs.point_quantization().apply(jnp.float32(0.0), cloud).points   # 2 m grid
    Array([[0., 2., 0.]], dtype=float32)

  Args:
    steps: grid steps in metres, cheapest (largest) first.
    extent: the span the coordinates are coded over, in metres (sets the bits per coordinate).
    extra_bits: bits per point besides the coordinates.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(steps, name="point_quantization")
  if values[-1] <= 0 or values[-1] > values[0]:
    raise ValueError(f"point_quantization: steps must fall and stay > 0, got {tuple(steps)}")
  if not (extent > values[0] and extra_bits >= 0):
    raise ValueError(f"point_quantization: extent must exceed the largest step and extra_bits "
                     f"be >= 0, got extent={extent}, extra_bits={extra_bits}")

  def step_of(setting, dtype):
    return _base.ladder_to_physical(values, _base.as_setting(setting, dtype))

  @jax.jit
  def apply(setting, cloud):
    step = step_of(setting, cloud.points.dtype)
    xyz = cloud.points[..., :3]
    error = jax.lax.stop_gradient(jnp.round(xyz / step) * step - xyz)
    xyz = xyz + error * (step / jax.lax.stop_gradient(step))
    return PointCloud(jnp.concatenate([xyz, cloud.points[..., 3:]], axis=-1), cloud.mask)

  @jax.jit
  def cost(setting, cloud):
    step = step_of(setting, cloud.points.dtype)
    bits = 3.0 * jnp.log2(extent / step) + extra_bits
    return jnp.sum(cloud.mask) * bits / 8.0

  return _base.ladder_knob(values, apply, cost, check=check_points,
                           name="point_quantization", unit="bytes", round_rule=round_rule)


def point_range(
    *,
    radii: Sequence[float] = (10.0, 20.0, 30.0, 40.0, 60.0),
    centre: tuple[float, float] = (40.0, 40.0),
    temperature: float = 1.0,
    round_rule: str = "up",
) -> _base.Knob:
  """Range / crop knob: send the points within `radius` metres (x, y) of `centre`.

  Cost: points sent per call (unit ``"points"``).

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> xyz = jnp.asarray([[40.0, 40.0, 0.0], [40.0, 65.0, 0.0], [0.0, 0.0, 0.0]])
    >>> cloud = knobs.PointCloud(xyz, jnp.ones(3))
    >>> knobs.point_range().apply(jnp.float32(0.25), cloud).mask   # radius 20 m
    Array([1., 0., 0.], dtype=float32)

  Args:
    radii: the discrete radii in metres, cheapest (smallest) first.
    centre: the x, y the radius is measured from, in the cloud's coordinates (the middle of an
      80 m tile by default; the origin for a sensor-centred scan).
    temperature: width of the backward pass's sigmoid, in metres.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(radii, name="point_range")
  if values[0] <= 0 or values[-1] < values[0]:
    raise ValueError(f"point_range: radii must increase from > 0, got {tuple(radii)}")

  def keep_of(setting, cloud):
    radius = _base.ladder_to_physical(values, _base.as_setting(setting, cloud.mask.dtype))
    xy = cloud.points[..., :2]
    offset = xy - jnp.asarray(centre, xy.dtype).reshape((1,) * (xy.ndim - 1) + (2,))
    distance = jnp.sqrt(jnp.sum(offset * offset, axis=-1) + 1e-12)
    soft = jax.nn.sigmoid((radius - distance) / temperature)
    return cloud.mask * _base.straight_through(soft, distance <= radius)

  return _dropping_knob(values, keep_of, name="point_range", round_rule=round_rule)
