"""The knob contract as one call: `check_knob(knob)` for a knob you have just written.

It runs the checks of the project's conformance suite (`tests/test_knob_conformance.py`) that any
knob must pass, on a small real-looking clip of odd size, and raises `AssertionError` naming the
first broken rule:

1. `apply` keeps shape and dtype and gives finite output, at settings 0, 0.5 and 1;
2. `apply` and `cost` give the same values eagerly, under `jax.jit` and under `jax.vmap`;
3. gradients of `apply` (with respect to setting and data) and of `cost` are finite at the
   bounds 0 and 1 and in between;
4. `cost` is a finite scalar that does not fall as the setting rises, and depends on it;
5. `values` is a 1-D ladder; `to_physical` maps 0 and 1 onto its ends; `round` snaps onto rungs.

Example:
  >>> import knobs, knobs.testing
  >>> knobs.testing.check_knob(knobs.resolution())
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from knobs._base import Knob


def _clip(height: int = 19, width: int = 27) -> jax.Array:
  """A textured pattern in `[0, 1]`, `float32 [4, H, W, 3]` (odd sizes on purpose), where each
  frame brightens a wider band of columns than the last: from frame to frame 0%, 15%, 45% and
  then 30% of the pixels change, so frame filters and frame rates have something to decide."""
  y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
  base = np.stack([0.4 + 0.2 * np.sin(9 * x + 5 * y + phase) for phase in (0.0, 1.0, 2.0)], -1)
  frames = [base + 0.3 * (x < band)[..., None] for band in (0.0, 0.15, 0.6, 0.9)]
  return jnp.asarray(np.clip(np.stack(frames), 0.0, 1.0), jnp.float32)


def audio_clip(num: int = 1601, rate: float = 16000.0) -> jax.Array:
  """A speech-like test signal `float32 [num]` in `[-1, 1]` (odd length on purpose): bursts of
  harmonics at 200 Hz and 2.5 kHz whose loudness changes chunk to chunk, over faint noise."""
  t = np.arange(num) / rate
  envelope = np.interp(np.linspace(0, 1, num), np.linspace(0, 1, 7),
                       [0.02, 0.6, 0.1, 0.8, 0.03, 0.4, 0.05])
  tone = np.sin(2 * np.pi * 200 * t) + 0.5 * np.sin(2 * np.pi * 2500 * t)
  noise = np.random.default_rng(0).normal(0, 0.01, num)
  return jnp.asarray(np.clip(envelope * tone / 1.5 + noise, -1, 1), jnp.float32)


def point_cloud(num: int = 301, features: int = 5):
  """A small terrain-like `PointCloud` (x, y, z in metres, then extra features) of `num` points,
  the last tenth padding (mask 0)."""
  from knobs._points import PointCloud

  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 60, (num, 2))
  z = 100 + 0.1 * xy[:, 0] + 3 * np.sin(xy[:, 1] / 7) + (rng.uniform(size=num) < 0.3) * 8
  extra = rng.uniform(0, 1, (num, features - 3))
  mask = (np.arange(num) < num - num // 10).astype(np.float32)
  return PointCloud(jnp.asarray(np.column_stack([xy, z, extra]), jnp.float32), jnp.asarray(mask))


def _at(knob: Knob, level: float):
  return jax.tree.map(lambda s: jnp.full_like(s, level), knob.init())


def _finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


def _close(a, b, what: str, atol: float = 1e-4):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if not np.allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4):
      raise AssertionError(f"{what}: largest difference {np.max(np.abs(np.asarray(x) - y)):.3g}")


def _describe(tree) -> list:
  return [(leaf.dtype, tuple(leaf.shape)) for leaf in jax.tree.leaves(tree)]


def _total(tree) -> jax.Array:
  return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree))


def check_knob(knob: Knob, data=None) -> None:
  """Raises `AssertionError` if `knob` breaks the knob contract (see the module docstring).

  Args:
    knob: the knob (or chain) to check.
    data: what it acts on: video `float32 [T, H, W, C]` in `[0, 1]` (default: a small odd-sized
      clip), audio `float32 [T]`, or a `knobs.PointCloud`. The cost must depend on the setting
      on this data.
  """
  data = _clip() if data is None else jax.tree.map(jnp.asarray, data)
  name = getattr(knob, "name", "knob")
  levels = (0.0, 0.5, 1.0)
  for level in levels:
    setting = _at(knob, level)
    out = knob.apply(setting, data)
    if jax.tree.structure(out) != jax.tree.structure(data) or _describe(out) != _describe(data):
      raise AssertionError(f"{name}.apply at {level}: got {_describe(out)}, "
                           f"want {_describe(data)}")
    if not _finite(out):
      raise AssertionError(f"{name}.apply at {level} gives non-finite output")
    _close(jax.jit(knob.apply)(setting, data), out, f"{name}.apply: jit differs from eager")
    cost = knob.cost(setting, data)
    if jnp.shape(cost) != () or not _finite(cost):
      raise AssertionError(f"{name}.cost at {level} must be a finite scalar, got {cost}")
    _close(jax.jit(knob.cost)(setting, data), cost, f"{name}.cost: jit differs from eager")
    # vmap over a batch of two settings and two copies of the data.
    batch = jax.tree.map(lambda s: jnp.stack([s, s]), setting)
    batched = jax.vmap(knob.apply)(batch, jax.tree.map(lambda x: jnp.stack([x, x]), data))
    _close(jax.tree.map(lambda b: b[1], batched), out, f"{name}.apply: vmap differs from eager")
    grad_setting, grad_data = jax.grad(lambda s, x: _total(knob.apply(s, x)), (0, 1))(
        setting, data)
    if not (_finite(grad_setting) and _finite(grad_data)):
      raise AssertionError(f"{name}.apply: gradient not finite at setting {level}")
    if not _finite(jax.grad(knob.cost)(setting, data)):
      raise AssertionError(f"{name}.cost: gradient not finite at setting {level}")
  costs = [float(knob.cost(_at(knob, level), data)) for level in levels]
  if any(np.diff(costs) < -1e-6 * max(abs(c) for c in costs)):
    raise AssertionError(f"{name}.cost falls as the setting rises: {costs} at {levels}")
  if costs[-1] <= costs[0]:
    raise AssertionError(f"{name}.cost does not depend on the setting: {costs}")
  for leaf_values, leaf_low, leaf_high in zip(
      jax.tree.leaves(knob.values, is_leaf=lambda v: isinstance(v, np.ndarray)),
      jax.tree.leaves(knob.to_physical(_at(knob, 0.0))),
      jax.tree.leaves(knob.to_physical(_at(knob, 1.0)))):
    values = np.asarray(leaf_values)
    if values.ndim != 1 or len(values) < 2:
      raise AssertionError(f"{name}.values must be a 1-D ladder of at least 2 values: {values}")
    if not (np.allclose(leaf_low, values[0], rtol=1e-5) and np.allclose(leaf_high, values[-1],
                                                                       rtol=1e-5)):
      raise AssertionError(f"{name}.to_physical must map 0 and 1 to {values[0]} and "
                           f"{values[-1]}, got {leaf_low} and {leaf_high}")
  for level in (0.13, 0.5, 0.77):
    for leaf, values in zip(jax.tree.leaves(knob.round(_at(knob, level))),
                            jax.tree.leaves(knob.values,
                                            is_leaf=lambda v: isinstance(v, np.ndarray))):
      position = np.asarray(leaf) * (len(values) - 1)
      if not np.allclose(position, np.round(position), atol=1e-5):
        raise AssertionError(f"{name}.round({level}) = {leaf} is not on a rung")


def depth_clip(height: int = 19, width: int = 27) -> jax.Array:
  """A depth-video-like `float32 [4, H, W, 1]` in `[0, 1]` (odd sizes on purpose): a ground plane
  whose range grows towards the top rows, a nearer block that moves a column a frame, and no
  return (0) in the top rows and a few scattered pixels."""
  y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
  frames = []
  for t in range(4):
    plane = 0.2 + 0.5 * (1 - y) + 0.01 * np.sin(13 * x)
    block = (np.abs(x - 0.3 - 0.04 * t) < 0.15) & (np.abs(y - 0.6) < 0.2)
    plane = np.where(block, 0.25 + 0.02 * y, plane)
    plane[: max(1, height // 6)] = 0.0
    plane[(np.arange(height)[:, None] * 7 + np.arange(width) * 3 + t) % 23 == 0] = 0.0
    frames.append(plane)
  return jnp.asarray(np.stack(frames)[..., None], jnp.float32)
