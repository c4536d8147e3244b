"""The knob protocol, the discrete ladder every knob shares, and the combinators.

A knob is a `NamedTuple` of pure functions, shaped like optax's `GradientTransformation`:
`init() -> setting`, `apply(setting, data) -> data`, `cost(setting, data) -> scalar`, plus the
ladder of discrete physical values a real system can use. Settings are normalised to `[0, 1]`,
`1.0` being the highest quality and the highest cost.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

Setting = Any  # a float array in [0, 1], or a pytree (dict) of them for a chain
Data = jax.Array


class KnobInitFn(Protocol):
  def __call__(self) -> Setting:
    """Returns the starting setting (all ones: the best quality)."""


class KnobApplyFn(Protocol):
  def __call__(self, setting: Setting, data: jax.Array) -> jax.Array:
    """Returns the stream as the analytics side sees it; same shape and dtype as `data`."""


class KnobCostFn(Protocol):
  def __call__(self, setting: Setting, data: jax.Array) -> jax.Array:
    """Returns a differentiable scalar estimate of the resource spent, in `Knob.unit`."""


class Knob(NamedTuple):
  """A differentiable configuration knob.

  Attributes:
    init: `() -> setting`, the starting setting (highest quality, `1.0`).
    apply: `(setting, data) -> data`, pure and differentiable in both arguments.
    cost: `(setting, data) -> scalar`, differentiable estimate of the resource spent per call
      (summed over any leading batch axes), in the unit named by `unit`.
    values: the discrete physical values a real system can use, ordered from the cheapest
      (setting 0) to the most expensive (setting 1); `values[i]` sits at setting `i / (n - 1)`.
      For a chain, a dict of its members' ladders.
    to_physical: `setting -> physical value`, piecewise-linear through the ladder.
    round: `setting -> setting` on the ladder; by default the more expensive neighbour, as in
      the paper (a setting is never rounded down to a lower quality).
    name: the knob's kind, e.g. ``"resolution"``.
    unit: what `cost` counts, e.g. ``"pixels"``, ``"frames"``, ``"bytes"``.
  """

  init: KnobInitFn
  apply: KnobApplyFn
  cost: KnobCostFn
  values: Any
  to_physical: Callable[[Setting], Any]
  round: Callable[[Setting], Setting]
  name: str
  unit: str


# --------------------------------------------------------------------------- ladders


def ladder(values: Sequence[float], *, name: str) -> np.ndarray:
  """Checks and freezes a ladder of physical values (cheapest first, strictly monotone)."""
  arr = np.asarray(values, dtype=np.float64)
  if arr.ndim != 1 or arr.size < 2:
    raise ValueError(f"{name}: needs at least two discrete values, got {values!r}")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name}: discrete values must be finite, got {values!r}")
  steps = np.diff(arr)
  if not (np.all(steps > 0) or np.all(steps < 0)):
    raise ValueError(
        f"{name}: discrete values must be strictly monotone, cheapest first, got {values!r}")
  arr.setflags(write=False)
  return arr


def ladder_to_physical(values: np.ndarray, setting: jax.typing.ArrayLike) -> jax.Array:
  """Piecewise-linear map from a setting in `[0, 1]` to the physical ladder."""
  setting = jnp.asarray(setting)
  dtype = setting.dtype if jnp.issubdtype(setting.dtype, jnp.floating) else jnp.float32
  setting = clip_unit(setting.astype(dtype))
  grid = jnp.linspace(0.0, 1.0, len(values), dtype=dtype)
  return jnp.interp(setting, grid, jnp.asarray(values, dtype))


def ladder_round(num_values: int, setting: jax.typing.ArrayLike, *, rule: str = "up") -> jax.Array:
  """Snaps a setting to the ladder: `rule="up"` (more expensive neighbour) or `"nearest"`."""
  setting = jnp.asarray(setting)
  dtype = setting.dtype if jnp.issubdtype(setting.dtype, jnp.floating) else jnp.float32
  scaled = jnp.clip(setting.astype(dtype), 0.0, 1.0) * (num_values - 1)
  if rule == "up":
    # The tolerance keeps a setting that is on the grid up to float error from jumping a rung.
    index = jnp.ceil(scaled - 1e-4)
  elif rule == "nearest":
    index = jnp.round(scaled)
  else:
    raise ValueError(f"round rule must be 'up' or 'nearest', got {rule!r}")
  return jnp.clip(index, 0, num_values - 1) / (num_values - 1)


def ladder_index(num_values: int, setting: jax.typing.ArrayLike) -> jax.Array:
  """The integer rung of a setting that is already on the ladder (after `round`)."""
  return jnp.round(jnp.asarray(setting) * (num_values - 1)).astype(jnp.int32)


# --------------------------------------------------------------------------- validation


def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


# Set while a chain runs its members: the chain checked the values of its input once, and what
# flows between members is the knobs' own output.
_VALUES_CHECKED = contextvars.ContextVar("knobs_values_checked", default=False)


@contextlib.contextmanager
def _values_checked():
  token = _VALUES_CHECKED.set(True)
  try:
    yield
  finally:
    _VALUES_CHECKED.reset(token)


def check_video(frames: Any, *, name: str = "frames", channels: int | None = 3,
                channel_axis: int = -1) -> None:
  """Raises a `ValueError` naming the problem if `frames` is not a valid video segment.

  A video segment is a float array `[..., T, H, W, C]` (or `[..., T, C, H, W]` with
  `channel_axis=-3`) with values in `[0, 1]`, `T >= 1`. Shape and dtype are checked always (they
  are static under `jax.jit`); NaN and range are checked only on concrete arrays, since a traced
  value cannot raise.

  Args:
    frames: the candidate segment.
    name: how to call it in the message.
    channels: the required size of the channel axis, or `None` for any.
    channel_axis: where the channels are, `-1` (the default) or `-3` (`channels_first`).
  """
  layout = _layout(channel_axis)
  if not hasattr(frames, "shape") or not hasattr(frames, "dtype"):
    raise ValueError(f"{name} must be an array {layout}, got {type(frames).__name__}")
  shape = tuple(frames.shape)
  if len(shape) < 4:
    raise ValueError(
        f"{name} must have rank >= 4, {layout}; got shape {shape} "
        f"(for a single image use frames[None] to add a time axis)")
  if not jnp.issubdtype(frames.dtype, jnp.floating):
    raise ValueError(
        f"{name} must be floating point in [0, 1], got dtype {frames.dtype} "
        f"(for uint8 frames use frames.astype(np.float32) / 255)")
  t = shape[-4]
  c = shape[channel_axis]
  h, w = frame_size(frames, channel_axis)
  if t == 0:
    raise ValueError(f"{name} has an empty time axis (T = 0) in shape {shape}")
  if h == 0 or w == 0:
    raise ValueError(f"{name} has an empty frame (H x W = {h} x {w}) in shape {shape}")
  if channels is not None and c != channels:
    where = "last axis" if channel_axis == -1 else "axis -3"
    raise ValueError(f"{name} must have {channels} channels ({where}), got shape {shape}")
  if _is_concrete(frames) and not _VALUES_CHECKED.get():
    values = np.asarray(frames)
    if not np.all(np.isfinite(values)):
      bad = np.argwhere(~np.isfinite(values))[0]
      raise ValueError(f"{name} contains NaN or infinite values (first at index {tuple(bad)})")
    lo, hi = float(values.min()), float(values.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
      raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def _layout(channel_axis: int) -> str:
  if channel_axis not in (-1, -3):
    raise ValueError(f"channel_axis must be -1 ([..., T, H, W, C]) or -3 ([..., T, C, H, W]), "
                     f"got {channel_axis!r}")
  return "[..., T, H, W, C]" if channel_axis == -1 else "[..., T, C, H, W]"


def frame_size(frames: Any, channel_axis: int = -1) -> tuple[int, int]:
  """`(H, W)` of video frames whose channels sit at `channel_axis` (`-1` or `-3`)."""
  _layout(channel_axis)
  return (frames.shape[-3], frames.shape[-2]) if channel_axis == -1 else tuple(frames.shape[-2:])


def check_setting(setting: Any, *, name: str, shape: tuple[int, ...] = ()) -> None:
  """Raises a `ValueError` if a concrete setting is not a float array of `shape` in `[0, 1]`.

  Traced settings are only checked for shape; `apply` clips them into `[0, 1]`. To run one
  knob on a batch of settings, `jax.vmap` it.
  """
  arr_shape = tuple(np.shape(setting))
  if arr_shape != shape:
    raise ValueError(
        f"{name}: setting must have shape {shape}, got {arr_shape} (use jax.vmap for a batch)")
  if _is_concrete(setting):
    values = np.asarray(setting, dtype=np.float64)
    if not np.all(np.isfinite(values)):
      raise ValueError(f"{name}: setting contains NaN or infinite values: {values}")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
      raise ValueError(
          f"{name}: setting must lie in [0, 1] (1 = best quality), got values in "
          f"[{values.min():.4g}, {values.max():.4g}]")


def clip_unit(setting: jax.Array) -> jax.Array:
  """Clips into `[0, 1]` in value, passing the gradient through unchanged.

  `jnp.clip` halves the gradient at the bounds (and zeroes it beyond); a setting starts at
  exactly 1.0, where the ascent needs the full gradient to decide whether to move down.
  Keeping the setting in range is the controller's projection, not the knob's.
  """
  return setting + jax.lax.stop_gradient(jnp.clip(setting, 0.0, 1.0) - setting)


def straight_through(soft: jax.Array, hard: jax.Array) -> jax.Array:
  """`hard` in value, `soft`'s gradient: `soft + stop_gradient(hard - soft)` (in `soft`'s dtype)."""
  return soft + jax.lax.stop_gradient(hard.astype(soft.dtype) - soft)


def as_setting(setting: Any, dtype: Any) -> jax.Array:
  """The setting as an array of `dtype`, clipped into `[0, 1]` (straight-through)."""
  return clip_unit(jnp.asarray(setting).astype(dtype))


def leading_batch(setting: jax.Array, *, setting_rank: int, data_rank: int) -> jax.Array:
  """Reshapes a (possibly batched) setting so it broadcasts against `[..., T, H, W, C]` data.

  A setting of shape `[*batch, *setting_shape]` becomes `[*batch, 1, 1, 1, 1, *setting_shape]`
  padded so that its rank matches without implicit rank promotion.
  """
  batch = setting.shape[: setting.ndim - setting_rank]
  inner = setting.shape[setting.ndim - setting_rank:]
  pad = data_rank - len(batch) - len(inner)
  return setting.reshape(batch + (1,) * pad + inner)


def ladder_knob(values: np.ndarray, apply: Callable, cost: Callable, *, name: str, unit: str,
                round_rule: str, check: Callable[[Any], None]) -> Knob:
  """A knob with a scalar setting on the ladder `values`, starting at the best quality; `apply`
  and `cost` are wrapped to check the setting and, with `check(data)`, the data first."""
  def checked(fn):
    def wrapped(setting, data):
      check_setting(setting, name=name)
      check(data)
      return fn(setting, data)
    return wrapped

  return Knob(
      init=lambda: jnp.ones((), jnp.float32), apply=checked(apply), cost=checked(cost),
      values=values, to_physical=lambda setting: ladder_to_physical(values, setting),
      round=lambda setting: ladder_round(len(values), setting, rule=round_rule),
      name=name, unit=unit)


# --------------------------------------------------------------------------- combinators


def chain(**knobs: Knob) -> Knob:
  """Composes knobs in camera order into one knob whose setting is a dict.

  The data flows through the knobs in the order given (keyword order). The chain's cost is the
  sum of its members' costs, each evaluated on the data as it reaches that member; the members
  must report cost in one unit (use `scale_cost` to convert one, or to drop it with factor 0,
  e.g. when a quantization knob placed last already counts the bytes of the whole stream).

  Example:
    >>> import knobs, jax.numpy as jnp
    >>> knob = knobs.chain(resolution=knobs.resolution(), qp=knobs.quantization())
    >>> setting = knob.init()
    >>> sorted(setting)
    ['qp', 'resolution']

  Args:
    **knobs: the knobs, by name, in camera order.

  Returns:
    A `Knob` with dict settings `{name: setting}`.
  """
  if not knobs:
    raise ValueError("chain needs at least one knob")
  for key, knob in knobs.items():
    if not isinstance(knob, Knob):
      raise ValueError(f"chain: {key!r} is not a Knob, got {type(knob).__name__}")
  names = tuple(knobs)
  units = {key: knob.unit for key, knob in knobs.items()}

  def _check(setting: Setting) -> None:
    if not isinstance(setting, dict) or set(setting) != set(names):
      got = sorted(setting) if isinstance(setting, dict) else type(setting).__name__
      raise ValueError(f"chain: setting must be a dict with keys {sorted(names)}, got {got}")

  def init_fn() -> Setting:
    return {key: knob.init() for key, knob in knobs.items()}

  # The first member checks the data (video, audio or points alike); what flows between members
  # is the knobs' own output, so the others skip the value checks.
  def apply_fn(setting: Setting, data: Any) -> Any:
    _check(setting)
    data = knobs[names[0]].apply(setting[names[0]], data)
    with _values_checked():
      for key in names[1:]:
        data = knobs[key].apply(setting[key], data)
    return data

  def cost_fn(setting: Setting, data: Any) -> jax.Array:
    _check(setting)
    if len(set(units.values())) > 1:
      raise ValueError(
          f"chain: cannot add costs in different units {units}; wrap members in "
          f"knobs.scale_cost(knob, factor, unit=...) to convert them (factor 0 drops one)")
    total = knobs[names[0]].cost(setting[names[0]], data)  # checks the data
    with _values_checked():
      if len(names) > 1:
        data = knobs[names[0]].apply(setting[names[0]], data)
      for position, key in enumerate(names[1:], start=1):
        total = total + knobs[key].cost(setting[key], data)
        if position + 1 < len(names):  # the last member's output feeds nothing
          data = knobs[key].apply(setting[key], data)
    return total

  def to_physical_fn(setting: Setting) -> dict[str, Any]:
    _check(setting)
    return {key: knobs[key].to_physical(setting[key]) for key in names}

  def round_fn(setting: Setting) -> Setting:
    _check(setting)
    return {key: knobs[key].round(setting[key]) for key in names}

  unit = units[names[0]] if len(set(units.values())) == 1 else "mixed"
  return Knob(
      init=init_fn,
      apply=apply_fn,
      cost=cost_fn,
      values={key: knob.values for key, knob in knobs.items()},
      to_physical=to_physical_fn,
      round=round_fn,
      name="chain(" + ",".join(names) + ")",
      unit=unit,
  )


def scale_cost(knob: Knob, factor: float, *, unit: str | None = None) -> Knob:
  """The same knob with its cost multiplied by `factor` (and optionally renamed to `unit`).

  Example: `scale_cost(resolution(), 0.07 / 8, unit="bytes")` turns pixels into a 0.07
  bits-per-pixel byte estimate; `scale_cost(knob, 0.0, unit="bytes")` drops a knob's cost from
  a chain whose bytes another member already counts.
  """
  factor = float(factor)
  if not math.isfinite(factor) or factor < 0:
    raise ValueError(f"scale_cost: factor must be finite and >= 0, got {factor}")

  def cost_fn(setting: Setting, data: jax.Array, **options) -> jax.Array:
    return knob.cost(setting, data, **options) * factor

  return knob._replace(cost=cost_fn, unit=knob.unit if unit is None else unit)
