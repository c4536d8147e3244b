"""Temporal knobs: frame rate and a Reducto-style frame filter.

Both send a subset of the frames and let the analytics side reuse the last frame it received.
The forward pass is the real, hard decimation; the backward pass differentiates a soft
relaxation of it (straight-through). Either way the output is `W @ frames` along time, with `W`
a `[T, T]` row-stochastic "which frame is shown at t" matrix: the hard `W` is one-hot, the soft
one spreads each row over earlier frames. Using `W = W_soft + stop_gradient(W_hard - W_soft)`
makes the value exactly the hard stream and the gradient with respect to the frames exactly the
hard selection's, while the gradient with respect to the setting flows through `W_soft`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base, _codec


def _hold_matrix_soft(keep: jax.Array) -> jax.Array:
  """`[T, T]` soft hold: frame t is fresh with probability `keep[t]`, else the previous output.

  `keep[..., t]` in `[0, 1]`, `keep[..., 0]` treated as 1. Row t is
  `keep[tau] * prod_{k = tau + 1 .. t} (1 - keep[k])` on column tau (tau = 0 uses keep = 1).
  Built by repeated multiplication (no powers or logs), so gradients stay finite at 0 and 1.
  """
  num = keep.shape[-1]
  fresh = keep.at[..., 0].set(1.0)
  rows = []
  previous = None
  for t in range(num):
    onehot = jnp.zeros_like(fresh).at[..., t].set(1.0)
    if previous is None:
      row = onehot
    else:
      row = fresh[..., t:t + 1] * onehot + (1.0 - fresh[..., t:t + 1]) * previous
    rows.append(row)
    previous = row
  return jnp.stack(rows, axis=-2)


def _hold_matrix_hard(sent: jax.Array) -> jax.Array:
  """`[T, T]` one-hot hold: row t selects the last sent frame at or before t (frame 0 is sent)."""
  num = sent.shape[-1]
  sent = sent.at[..., 0].set(True)
  steps = jnp.arange(num)
  source = jax.lax.cummax(jnp.where(sent, steps, 0), axis=sent.ndim - 1)
  return jax.nn.one_hot(source, num, dtype=jnp.float32)


def _mix(weights: jax.Array, frames: jax.Array) -> jax.Array:
  """Applies `[..., T, T]` time weights to `[..., T, H, W, C]` frames."""
  return jnp.einsum("...ts,...shwc->...thwc", weights.astype(frames.dtype), frames)


def _batch_size(frames: jax.Array) -> int:
  return int(np.prod(frames.shape[:-4], dtype=np.int64))


# --------------------------------------------------------------------------- frame rate

@jax.custom_jvp
def _held(fraction: jax.Array, frames: jax.Array) -> jax.Array:
  """The frame-rate knob's stream: `frames [..., T, H, W, C]` decimated to keep `fraction` of
  them, each dropped frame showing the last one kept (the hard hold), differentiated as the soft
  hold (`_hold_matrix_soft`) in `fraction`, straight-through.

  The same as `_mix(straight_through(soft, hard), frames)`, written so that the gradient in the
  fraction is one more mix (`<cotangent, mix(d soft / d fraction, frames)>`) rather than the
  `[T, T]` contraction of the cotangent with the frames over every pixel, which XLA's CPU
  backend runs as one ill-shaped dot (0.3 s of a 720p camera step, 20 times the mix itself).
  """
  return _mix(_hold_matrix_hard(frames_sent(frames.shape[-4], fraction)), frames)


@_held.defjvp
def _held_jvp(primals, tangents):
  fraction, frames = primals
  d_fraction, d_frames = tangents
  num = frames.shape[-4]
  hard = _hold_matrix_hard(frames_sent(num, fraction))
  _, d_soft = jax.jvp(lambda f: _hold_matrix_soft(jnp.full((num,), f, frames.dtype)),
                      (fraction,), (jnp.ones_like(fraction),))
  d_out = _mix_summed(hard, d_frames) + d_fraction.astype(frames.dtype) * _mix(d_soft, frames)
  return _mix(hard, frames), d_out


def _mix_summed(weights: jax.Array, frames: jax.Array) -> jax.Array:
  """`_mix` as a broadcast product summed over the source frames, for a tangent: its transpose
  (the cotangent's way back to the frames) is the same kind of loop, where `_mix`'s dot
  transposes into a dot with the pixels first and the frames last, then a transpose of the
  whole segment, the largest op of the 720p camera step (benchmarks/RESULTS.md)."""
  w = weights.astype(frames.dtype)
  return jnp.sum(w.reshape(w.shape + (1, 1, 1)) * jnp.expand_dims(frames, -5), axis=-4)


def frames_sent(num_frames: int, fraction):
  """The send rule of `frame_rate`: `bool [num_frames]`, frame t (t >= 1) sent when
  `floor(t * fraction)` steps up (frame 0 always). NumPy in, NumPy out (the real sender); a JAX
  array in, JAX out (the knob).

  Example:
    >>> import knobs
    >>> knobs.frames_sent(6, 0.5).tolist()
    [True, False, True, False, True, False]
  """
  xp = jnp if isinstance(fraction, jax.Array) else np
  fraction = xp.asarray(fraction)
  steps = xp.arange(num_frames, dtype=fraction.dtype)
  # The small offset keeps exact fractions (1/3 * 3) from landing a hair below an integer.
  ticks = xp.floor(steps * fraction + 1e-4)
  return xp.concatenate([xp.ones((1,), bool), ticks[1:] > ticks[:-1]])


def frame_rate(
    *,
    source_fps: float = 10.0,
    rates: Sequence[float] | None = None,
    round_rule: str = "up",
) -> _base.Knob:
  """Frame-rate knob: keep a fraction of the frames, hold the last kept one in between.

  With keep fraction `f = fps / source_fps`, frame t (t >= 1) is sent when `floor(t f)` steps
  up, so `f = 1/2` sends frames 0, 2, 4, ... and a dropped frame shows the last sent frame
  (what an analytics server does when it reuses results). Forward: that hard decimation.
  Backward: each frame is treated as fresh with probability `f` (an exponential hold), so the
  gradient with respect to the setting says how much fresher frames would change the output.
  Whole frames move, so channels first (`channel_axis=-3`, `[..., T, C, H, W]`) runs the same,
  and so does a `knobs.YCbCr420` (each plane held alike).

  Cost: frames sent per call (unit ``"frames"``), hard in value, `1 + f (T - 1)` in gradient.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> knob = knobs.frame_rate(source_fps=10.0)
    >>> frames = jnp.linspace(0, 1, 6).reshape(6, 1, 1, 1) * jnp.ones((6, 2, 2, 3))
    >>> held = knob.apply(jnp.float32(0.75), frames)   # 5 fps: every other frame
    >>> [round(float(v), 1) for v in held[:, 0, 0, 0]]
    [0.0, 0.0, 0.4, 0.4, 0.8, 0.8]

  Args:
    source_fps: the frame rate of the incoming segment.
    rates: the discrete frame rates, cheapest first, each in `(0, source_fps]`; by default
      `source_fps` divided by 10, 5, 3, 2 and 1.
    round_rule: `"up"` (more expensive neighbour) or `"nearest"`.

  Returns:
    A `Knob` with a scalar setting.
  """
  if not source_fps > 0:
    raise ValueError(f"frame_rate: source_fps must be > 0, got {source_fps}")
  if rates is None:
    rates = tuple(source_fps / k for k in (10, 5, 3, 2, 1))
  values = _base.ladder(rates, name="frame_rate")
  if values[0] <= 0 or values[-1] > source_fps * (1 + 1e-9) or values[-1] < values[0]:
    raise ValueError(
        f"frame_rate: rates must increase within (0, source_fps={source_fps}], got {tuple(rates)}")

  def to_physical(setting):
    return _base.ladder_to_physical(values, setting)

  def _fraction(setting, frames):
    return jnp.clip(to_physical(_base.as_setting(setting, frames.dtype)) / source_fps, 0, 1)

  @jax.jit
  def _apply(setting, frames):  # an array, or each plane of a `YCbCr420`
    fraction = _fraction(setting, jax.tree.leaves(frames)[0])
    return jax.tree.map(lambda plane: _held(fraction, plane), frames)

  @jax.jit
  def _cost(setting, frames):
    fraction = _fraction(setting, frames)
    num = frames.shape[-4]
    sent = frames_sent(num, fraction)
    soft = 1.0 + fraction * (num - 1)
    return _batch_size(frames) * _base.straight_through(soft, jnp.sum(sent))

  def _check(setting, frames, channel_axis):
    _base.check_setting(setting, name="frame_rate")
    if isinstance(frames, _codec.YCbCr420):
      _codec.check_ycbcr420(frames, macroblocks=False)
      return frames.luma
    _base.check_video(frames, channels=None, channel_axis=channel_axis)
    return frames

  def apply(setting, frames, *, channel_axis=-1):
    _check(setting, frames, channel_axis)
    return _apply(setting, frames)

  def cost(setting, frames, *, channel_axis=-1):
    return _cost(setting, _check(setting, frames, channel_axis))

  return _base.Knob(
      init=lambda: jnp.ones((), jnp.float32),
      apply=apply,
      cost=cost,
      values=values,
      to_physical=to_physical,
      round=lambda setting: _base.ladder_round(len(values), setting, rule=round_rule),
      name="frame_rate",
      unit="frames",
  )


# --------------------------------------------------------------------------- frame filter

def _changed_fraction(frame, reference, pixel_delta):
  grey_change = jnp.abs(jnp.mean(frame - reference, axis=-1))
  changed = jax.nn.sigmoid((grey_change - pixel_delta) / (0.2 * pixel_delta))
  return jnp.mean(changed, axis=(-2, -1))


def _filter_decisions(frames, threshold, pixel_delta, temperature):
  """`(sent, prob)`, each `[..., T]`: the hard decisions and their soft relaxation."""
  by_time = jnp.moveaxis(frames, -4, 0)

  def step(carry, frame):
    hard_ref, soft_ref = carry
    sent = _changed_fraction(frame, hard_ref, pixel_delta) > threshold
    prob = jax.nn.sigmoid((_changed_fraction(frame, soft_ref, pixel_delta) - threshold)
                          / temperature)
    hard_ref = jnp.where(sent[..., None, None, None], frame, hard_ref)
    soft_ref = prob[..., None, None, None] * frame + (1 - prob[..., None, None, None]) * soft_ref
    return (hard_ref, soft_ref), (sent, prob)

  _, (sent, prob) = jax.lax.scan(step, (by_time[0], by_time[0]), by_time[1:])
  first_sent = jnp.ones(sent.shape[1:] + (1,), bool)
  first_prob = jnp.ones(prob.shape[1:] + (1,), prob.dtype)
  sent = jnp.concatenate([first_sent, jnp.moveaxis(sent, 0, -1)], axis=-1)
  prob = jnp.concatenate([first_prob, jnp.moveaxis(prob, 0, -1)], axis=-1)
  return sent, prob


def frame_filter_sent(frames, threshold: float, *, pixel_delta: float = 0.05) -> jax.Array:
  """Which frames `frame_filter` sends at a physical `threshold`: `bool [..., T]`.

  The rule of the knob's forward pass (frame 0 is always sent), for a camera or a codec that
  needs the decisions themselves, e.g. to encode only the frames sent.
  """
  frames = jnp.asarray(frames)
  _base.check_video(frames, channels=None)
  threshold = jnp.asarray(threshold, frames.dtype)
  return _filter_decisions(frames, threshold, pixel_delta, 1.0)[0]


DEFAULT_THRESHOLDS = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.0)


def frame_filter(
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    pixel_delta: float = 0.05,
    temperature: float = 0.02,
    round_rule: str = "up",
) -> _base.Knob:
  """Reducto-style frame filter: send a frame only if it differs enough from the last one sent.

  The difference feature is Reducto's pixel feature: the fraction of pixels whose grey level
  moved by more than `pixel_delta` since the last *sent* frame (a pixel's change passes through
  a steep sigmoid, so the feature is differentiable in the frames). A frame is sent when the
  feature exceeds the threshold; otherwise the last sent frame is reused. Forward: hard
  decisions. Backward: a frame is sent with probability `sigmoid((feature - threshold) /
  temperature)`, each decision measured against the soft stream's own last frame.

  The setting maps onto `thresholds`, largest (fewest frames, cheapest) first; setting 1 is a
  threshold of 0, which sends every frame that changed at all.

  Cost: frames sent per call (unit ``"frames"``), hard in value, soft in gradient.

  Args:
    thresholds: the discrete thresholds on the changed-pixel fraction, cheapest (largest) first.
    pixel_delta: how much a grey level in `[0, 1]` must move for a pixel to count as changed.
    temperature: the softness of the send decision in the backward pass.
    round_rule: `"up"` (more expensive neighbour) or `"nearest"`.

  Returns:
    A `Knob` with a scalar setting.
  """
  values = _base.ladder(thresholds, name="frame_filter")
  if values[-1] < 0 or values[0] > 1 or values[-1] > values[0]:
    raise ValueError(
        f"frame_filter: thresholds must decrease within [0, 1], got {tuple(thresholds)}")
  if not (pixel_delta > 0 and temperature > 0):
    raise ValueError("frame_filter: pixel_delta and temperature must be > 0")

  def to_physical(setting):
    return _base.ladder_to_physical(values, setting)

  def _decisions(setting, frames):
    threshold = to_physical(_base.as_setting(setting, frames.dtype))
    return _filter_decisions(frames, threshold, pixel_delta, temperature)

  @jax.jit
  def _apply(setting, frames):
    sent, prob = _decisions(setting, frames)
    weights = _base.straight_through(_hold_matrix_soft(prob), _hold_matrix_hard(sent))
    return _mix(weights, frames)

  @jax.jit
  def _cost(setting, frames):
    sent, prob = _decisions(setting, frames)
    return jnp.sum(_base.straight_through(prob, sent))

  def apply(setting, frames):
    _base.check_setting(setting, name="frame_filter")
    _base.check_video(frames, channels=None)
    return _apply(setting, frames)

  def cost(setting, frames):
    _base.check_setting(setting, name="frame_filter")
    _base.check_video(frames, channels=None)
    return _cost(setting, frames)

  return _base.Knob(
      init=lambda: jnp.ones((), jnp.float32),
      apply=apply,
      cost=cost,
      values=values,
      to_physical=to_physical,
      round=lambda setting: _base.ladder_round(len(values), setting, rule=round_rule),
      name="frame_filter",
      unit="frames",
  )
