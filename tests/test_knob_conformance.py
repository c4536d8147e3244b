"""The conformance suite every knob, present and future, runs through.

The cases are written once in `_Conformance`; `TestEager`, `TestJit` and `TestVmap` run them
with the knob's functions called directly, under `jax.jit`, and under `jax.vmap` (dm_pix's
pattern). A new knob joins by adding one entry to `CASES`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import knobs
from tests import clips


@dataclasses.dataclass(frozen=True)
class Case:
  make: Callable[[tuple[int, int]], knobs.Knob]
  smooth_apply: bool = False  # check_grads applies to apply (no straight-through pieces)
  smooth_cost: bool = False


CASES = {
    "resolution": Case(lambda hw: knobs.resolution(), smooth_apply=True, smooth_cost=True),
    "frame_rate": Case(lambda hw: knobs.frame_rate(source_fps=10.0)),
    "quantization": Case(lambda hw: knobs.quantization(), smooth_cost=True),
    # JPEG's tables are integers (floored straight-through), so its cost is a step function.
    "quantization_jpeg": Case(lambda hw: knobs.quantization(mode="jpeg")),
    "roi_quality": Case(lambda hw: knobs.roi_quality(hw), smooth_cost=True),
    "frame_filter": Case(lambda hw: knobs.frame_filter()),
    "chain": Case(lambda hw: knobs.chain(
        resolution=knobs.scale_cost(knobs.resolution(), 0.0, unit="bytes"),
        frame_rate=knobs.scale_cost(knobs.frame_rate(), 0.0, unit="bytes"),
        qp=knobs.quantization())),
}
NAMES = sorted(CASES)


@functools.cache
def _knob(name: str, frame_size: tuple[int, int]) -> knobs.Knob:
  """One knob per case and size, so its jitted functions compile once for the whole suite."""
  return CASES[name].make(frame_size)
# Not multiples of 8 or 16 on purpose; the second is a single odd-sized frame.
SIZES = [(4, 37, 53), (1, 9, 31)]


def _frames(num_frames=4, height=37, width=53):
  return jnp.asarray(clips.pan(num_frames, height, width))


def _at(knob: knobs.Knob, level: float):
  """The knob's setting with every leaf at `level`."""
  return jax.tree.map(lambda s: jnp.full_like(s, level), knob.init())


def _leaves_finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


class _Conformance:
  """Cases shared by every variant. `variant(fn)` returns the function the case should call."""

  def variant(self, fn):
    raise NotImplementedError

  @pytest.mark.parametrize("name", NAMES)
  @pytest.mark.parametrize("size", SIZES)
  def test_shape_and_dtype_preserved(self, name, size):
    frames = _frames(*size)
    knob = _knob(name, size[1:])
    for level in (0.0, 0.4, 1.0):
      out = self.variant(knob.apply)(_at(knob, level), frames)
      assert out.shape == frames.shape and out.dtype == frames.dtype
      assert _leaves_finite(out)

  @pytest.mark.parametrize("name", NAMES)
  def test_agrees_with_eager(self, name):
    frames = _frames()
    knob = _knob(name, frames.shape[1:3])
    for level in (0.15, 0.6):
      setting = _at(knob, level)
      eager_out = knob.apply(setting, frames)
      out = self.variant(knob.apply)(setting, frames)
      # A straight-through rounding may land a coefficient on the other side of .5 when XLA fuses
      # differently; the streams must still agree almost everywhere.
      close = np.isclose(np.asarray(out), np.asarray(eager_out), atol=1e-4)
      assert close.mean() > 0.999, f"{name}: {1 - close.mean():.2%} of pixels differ"
      np.testing.assert_allclose(
          self.variant(knob.cost)(setting, frames), knob.cost(setting, frames), rtol=1e-4)

  @pytest.mark.parametrize("name", NAMES)
  @pytest.mark.parametrize("size", SIZES)
  def test_gradients_finite_at_bounds_and_odd_sizes(self, name, size):
    frames = _frames(*size)
    knob = _knob(name, size[1:])
    weights = jnp.asarray(np.random.default_rng(0).standard_normal(frames.shape), frames.dtype)

    def objective(setting, frames):
      return jnp.sum(knob.apply(setting, frames) * weights) + knob.cost(setting, frames)

    grad_fn = self.variant(jax.grad(objective, argnums=(0, 1)))
    for level in (0.0, 1.0, 0.5):
      grad_setting, grad_frames = grad_fn(_at(knob, level), frames)
      assert _leaves_finite(grad_setting), f"{name} setting gradient at {level}: {grad_setting}"
      assert _leaves_finite(grad_frames), f"{name} frame gradient at {level} not finite"

  @pytest.mark.parametrize("name", NAMES)
  def test_cost_monotone_in_setting(self, name):
    frames = _frames(6)
    knob = _knob(name, frames.shape[1:3])
    levels = np.linspace(0.0, 1.0, 11)
    costs = [float(self.variant(knob.cost)(_at(knob, level), frames)) for level in levels]
    assert all(np.diff(costs) >= -1e-6 * max(costs)), f"{name}: {costs}"
    assert costs[-1] > costs[0], f"{name}: cost does not depend on the setting: {costs}"

  @pytest.mark.parametrize("name", NAMES)
  def test_cost_gradient_points_up(self, name):
    """More quality costs more: d cost / d setting >= 0 at interior settings."""
    frames = _frames()
    knob = _knob(name, frames.shape[1:3])
    grad = self.variant(jax.grad(knob.cost))(_at(knob, 0.55), frames)
    total = sum(float(jnp.sum(leaf)) for leaf in jax.tree.leaves(grad))
    assert total > 0, f"{name}: d cost / d setting = {grad}"


class TestEager(_Conformance):
  def variant(self, fn):
    return fn


class TestJit(_Conformance):
  def variant(self, fn):
    return jax.jit(fn)


class TestVmap(_Conformance):
  """Runs on a batch of two (the given inputs and a perturbed copy) and checks both rows."""

  def variant(self, fn):
    def batched(setting, frames):
      other_setting = jax.tree.map(lambda s: jnp.clip(0.9 - 0.5 * s, 0.0, 1.0), setting)
      other_frames = frames[..., ::-1, :]  # mirrored: same statistics, different content
      settings = jax.tree.map(lambda a, b: jnp.stack([a, b]), setting, other_setting)
      out = jax.vmap(fn)(settings, jnp.stack([frames, other_frames]))
      expected_other = fn(other_setting, other_frames)
      jax.tree.map(
          lambda got, want: np.testing.assert_allclose(got[1], want, rtol=1e-3, atol=2e-3),
          out, expected_other)
      return jax.tree.map(lambda a: a[0], out)

    return batched


# --------------------------------------------------------------------------- per-knob facts


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].smooth_apply])
def test_apply_matches_finite_differences(name):
  with jax.enable_x64(True):
    frames = jnp.asarray(clips.pan(2, 21, 27), jnp.float64)
    knob = _knob(name, frames.shape[1:3])
    for level in (0.13, 0.47, 0.86):  # between the ladder's rungs, where it is smooth
      setting = jax.tree.map(lambda s: jnp.full(s.shape, level, jnp.float64), knob.init())
      check_grads(lambda s: knob.apply(s, frames), (setting,), order=1, modes=("rev",),
                  atol=1e-4, rtol=1e-3)
      check_grads(lambda x: knob.apply(setting, x), (frames,), order=1, modes=("rev",))


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].smooth_cost])
def test_cost_matches_finite_differences(name):
  with jax.enable_x64(True):
    frames = jnp.asarray(clips.pan(3, 19, 24), jnp.float64)
    knob = _knob(name, frames.shape[1:3])
    for level in (0.13, 0.47, 0.86):
      setting = jax.tree.map(lambda s: jnp.full(s.shape, level, jnp.float64), knob.init())
      check_grads(lambda s: knob.cost(s, frames), (setting,), order=1, modes=("rev",),
                  atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_leading_batch_axes(name):
  frames = jnp.stack([_frames(), _frames()[..., ::-1, :, :]])
  knob = _knob(name, frames.shape[2:4])
  setting = _at(knob, 0.45)
  out = knob.apply(setting, frames)
  for i in range(2):
    np.testing.assert_allclose(out[i], knob.apply(setting, frames[i]), atol=1e-5)
  np.testing.assert_allclose(
      knob.cost(setting, frames),
      knob.cost(setting, frames[0]) + knob.cost(setting, frames[1]), rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_ladder_endpoints_and_rounding(name):
  knob = _knob(name, (37, 53))
  ladders = knob.values if isinstance(knob.values, dict) else {"": knob.values}
  physical_low = knob.to_physical(_at(knob, 0.0))
  physical_high = knob.to_physical(_at(knob, 1.0))
  low = physical_low if isinstance(physical_low, dict) else {"": physical_low}
  high = physical_high if isinstance(physical_high, dict) else {"": physical_high}
  for key, values in ladders.items():
    np.testing.assert_allclose(low[key], values[0], rtol=1e-6)
    np.testing.assert_allclose(high[key], values[-1], rtol=1e-6)
  for level in np.linspace(0, 1, 23):
    setting = _at(knob, level)
    rounded = knob.round(setting)
    settings = setting if isinstance(setting, dict) else {"": setting}
    roundeds = rounded if isinstance(rounded, dict) else {"": rounded}
    for key, values in ladders.items():
      leaf_in, leaf_out, n = settings[key], roundeds[key], len(values)
      # The paper's rule: the more expensive neighbour, on the grid i / (n - 1).
      assert np.all(np.asarray(leaf_out) >= np.asarray(leaf_in) - 1e-4)
      assert np.all(np.asarray(leaf_out) - np.asarray(leaf_in) < 1.0 / (n - 1) + 1e-6)
      grid = np.asarray(leaf_out) * (n - 1)
      np.testing.assert_allclose(grid, np.round(grid), atol=1e-5)


def test_jitted_chain_is_traced_once_over_new_settings():
  frames = _frames()
  knob = _knob("chain", frames.shape[1:3])
  traces = []

  @jax.jit
  def objective(setting):
    traces.append(1)
    out = knob.apply(setting, frames)
    return jnp.mean(out) - 1e-6 * knob.cost(setting, frames)

  for level in np.linspace(0.05, 1.0, 10):
    jax.value_and_grad(objective)(_at(knob, float(level)))
  assert len(traces) == 1


def test_chain_applies_members_in_camera_order():
  frames = _frames()
  res, qp = knobs.resolution(), knobs.quantization()
  knob = knobs.chain(resolution=res, qp=qp)
  setting = {"resolution": jnp.float32(0.3), "qp": jnp.float32(0.6)}
  expected = qp.apply(setting["qp"], res.apply(setting["resolution"], frames))
  np.testing.assert_allclose(knob.apply(setting, frames), expected, atol=1e-6)


def scipy_lowpass(frames: np.ndarray, scale: float, rolloff: float, *,
                  clip: bool = True) -> np.ndarray:
  """The resolution knob's filter from its definition: DCT-II (SciPy, ortho) along height and
  width (`[..., H, W, C]`), the raised-cosine gain, the inverse DCT; 8-bit range clipping as the
  knob does, unless not `clip`."""
  import scipy.fft

  out = frames.astype(np.float64)
  for axis in (-3, -2):
    size = frames.shape[axis]
    position = np.clip((np.arange(size) / size - scale * (1 - rolloff)) / (2 * scale * rolloff),
                       0.0, 1.0)
    gain = (0.5 + 0.5 * np.cos(np.pi * position)).reshape([-1] + [1] * (-axis - 1))
    out = scipy.fft.idct(gain * scipy.fft.dct(out, axis=axis, norm="ortho"), axis=axis,
                         norm="ortho")
  return np.clip(out, 0.0, 1.0) if clip else out


@pytest.mark.parametrize("shape", [(2, 37, 53, 3), (2, 1, 9, 16, 1)])
@pytest.mark.parametrize("setting", [0.0, 0.37, 0.8])
def test_resolution_is_the_dct_low_pass_of_a_scipy_reference(shape, setting):
  frames = np.asarray(jax.random.uniform(jax.random.key(3), shape))
  knob = knobs.resolution()
  scale = float(knob.to_physical(jnp.float32(setting)))
  assert scale < 1.0
  np.testing.assert_allclose(knob.apply(jnp.float32(setting), jnp.asarray(frames)),
                             scipy_lowpass(frames, scale, 0.15), atol=2e-6)


@pytest.mark.parametrize("ycbcr420", [False, True])
def test_resolution_at_full_scale_is_the_input_with_the_roll_off_gradient(ycbcr420):
  """At scale 1 the output is the input (RGB: to the bit; 4:2:0: its planes, chroma pooled)
  and the gradient is the filter's (the roll-off band's), in each of a batch of settings under
  `vmap` as alone: the knob's conditional against the blend it replaced, written out here."""
  from knobs import _codec, _resolution

  frames = jax.random.uniform(jax.random.key(5), (3, 16, 32, 3))
  knob = knobs.resolution()

  @jax.jit
  def blend(setting):  # the pre-conditional form: the filter, the input blended in at scale 1
    scale = knob.to_physical(setting)
    masks = [_resolution.lowpass_mask(n, scale, rolloff=0.15) for n in (16, 32)]
    full = (scale >= 1.0).astype(jnp.float32)
    if not ycbcr420:
      out = _resolution.lowpass(frames, *masks)
      return jnp.clip(out + jax.lax.stop_gradient(full * (frames - out)), 0.0, 1.0)
    y, cb, cr = _codec.ycbcr_planes(frames)
    y = y[..., None, :, :]
    luma = _resolution.lowpass(y, *masks, channel_axis=-3)
    chroma = jnp.stack([cb, cr], axis=-3)
    pooled = _resolution.lowpass_pooled(chroma, *masks)
    luma = luma + jax.lax.stop_gradient(full * (y - luma))
    pooled = pooled + jax.lax.stop_gradient(full * (_codec._pool2(chroma) - pooled))
    return _codec.YCbCr420(jnp.clip(luma, 0.0, 1.0),
                           jnp.clip(pooled + _codec.CHROMA_CENTRE, 0.0, 1.0))

  def apply(setting):
    return knob.apply(setting, frames, ycbcr420=ycbcr420)

  def projected(fn):  # a scalar of the output, its gradient in the setting
    return jax.grad(lambda s: sum(jnp.sum(jnp.sin(7.0 * leaf))
                                  for leaf in jax.tree.leaves(fn(s))))

  settings = jnp.array([0.4, 1.0], jnp.float32)
  if not ycbcr420:
    np.testing.assert_array_equal(apply(jnp.float32(1.0)), frames)
  for s in settings:  # XLA fuses the two forms apart: the same to float rounding
    for mine, theirs in zip(jax.tree.leaves(apply(s)), jax.tree.leaves(blend(s))):
      np.testing.assert_allclose(mine, theirs, atol=1e-6)
    np.testing.assert_allclose(projected(apply)(s), projected(blend)(s), rtol=1e-5)
    assert float(projected(apply)(s)) != 0.0
  batched = jax.vmap(apply)(settings)
  for i, s in enumerate(settings):
    for mine, alone in zip(jax.tree.leaves(batched), jax.tree.leaves(apply(s))):
      np.testing.assert_array_equal(mine[i], alone)
  np.testing.assert_allclose(jax.vmap(projected(apply))(settings),
                             [projected(blend)(s) for s in settings], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 16])
def test_resolution_dct_is_scipys_in_interleaved_order(n):
  import scipy.fft

  from knobs import _resolution

  x = np.asarray(jax.random.normal(jax.random.key(n), (3, n)), np.float64)
  reference = scipy.fft.dct(x, axis=-1)  # unnormalised DCT-II, 2 sum x cos(...)
  k = np.arange(n // 2 + 1)
  expected = np.zeros((3, 2 * len(k)))
  expected[:, 0::2] = reference[:, k] / 2.0
  expected[:, 3::2] = reference[:, n - k[1:]] / 2.0  # C[n] reads 0
  coefficients = _resolution._dct(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(coefficients, expected, atol=1e-5 * max(1, n))
  np.testing.assert_allclose(_resolution._idct(coefficients, n), x, atol=1e-5)


@pytest.mark.parametrize("n", [1, 6, 7])
def test_resolution_reorder_gather_differentiates_as_its_slices(n):
  """`_reorder`'s value is a gather and its tangent the slices' form: both modes must give the
  permutation and its transpose exactly."""
  from knobs import _resolution

  x = jax.random.normal(jax.random.key(0), (2, n))
  t = jax.random.normal(jax.random.key(1), (2, n))
  order = _resolution._order(n)
  np.testing.assert_array_equal(_resolution._reorder(x), np.asarray(x)[:, order])
  _, tangent = jax.jvp(_resolution._reorder, (x,), (t,))
  np.testing.assert_array_equal(tangent, np.asarray(t)[:, order])
  (pulled,) = jax.vjp(_resolution._reorder, x)[1](t)
  expected = np.zeros((2, n), np.float32)
  expected[:, order] = np.asarray(t)
  np.testing.assert_array_equal(pulled, expected)


@pytest.mark.parametrize("h, w", [(5, 8), (9, 7)])
def test_resolution_gain_is_the_halves_gain_interleaved(h, w):
  """The gain on the interleaved coefficients is the separable halves-order gain, moved."""
  from knobs import _resolution

  mask_h = jax.random.uniform(jax.random.key(0), (h,))
  mask_w = jax.random.uniform(jax.random.key(1), (w,))
  halves = np.outer(_resolution._halves_gain(mask_w), _resolution._halves_gain(mask_h))
  order_w, order_h = _resolution._interleaved(w), _resolution._interleaved(h)
  np.testing.assert_array_equal(_resolution._gain(mask_h, mask_w),
                                halves[order_w][:, order_h])


def _numpy_soft_hold(fraction: float, num: int) -> np.ndarray:
  """The frame-rate knob's soft hold from its definition: row t weighs frame tau <= t by
  `keep(tau) * (1 - f) ** (t - tau)`, with `keep(0) = 1` and `keep(tau) = f` after."""
  weights = np.zeros((num, num))
  for t in range(num):
    for tau in range(t + 1):
      weights[t, tau] = (1.0 if tau == 0 else fraction) * (1.0 - fraction) ** (t - tau)
  return weights


@pytest.mark.parametrize("setting", [0.1, 0.3, 0.62, 0.9])
def test_frame_rate_gradient_is_the_soft_holds_in_both_modes(setting):
  knob = knobs.frame_rate(source_fps=10.0)
  frames = _frames(6, 9, 7)
  cotangent = jax.random.normal(jax.random.key(5), frames.shape)
  loss = lambda s: jnp.sum(knob.apply(s, frames) * cotangent)
  grad = float(jax.grad(loss)(jnp.float32(setting)))
  _, tangent = jax.jvp(loss, (jnp.float32(setting),), (jnp.float32(1.0),))

  eps = 1e-4
  rungs = np.linspace(0.0, 1.0, len(knob.values))
  fraction = lambda s: np.interp(s, rungs, knob.values) / 10.0
  d_fraction = (fraction(setting + eps) - fraction(setting - eps)) / (2 * eps)
  f = fraction(setting)
  d_soft = (_numpy_soft_hold(f + eps, 6) - _numpy_soft_hold(f - eps, 6)) / (2 * eps)
  x, c = np.asarray(frames, np.float64), np.asarray(cotangent, np.float64)
  expected = d_fraction * np.einsum("ts,thwc,shwc->", d_soft, c, x)
  np.testing.assert_allclose(grad, expected, rtol=1e-4)
  np.testing.assert_allclose(float(tangent), expected, rtol=1e-4)


CHANNELS_FIRST = ["frame_rate", "quantization", "quantization_jpeg", "resolution", "roi_quality"]


@pytest.mark.parametrize("name", CHANNELS_FIRST)
@pytest.mark.parametrize("size", SIZES)
def test_channels_first_is_the_same_knob_on_transposed_frames(name, size):
  """`channel_axis=-3` takes and gives `[..., T, C, H, W]`: the channels-last output moved, the
  same bytes, and the same pullback of a cotangent, at odd sizes (padding to macroblocks)."""
  frames = _frames(*size)
  planes = jnp.moveaxis(frames, -1, -3)
  knob = _knob(name, size[1:])
  cotangent = jnp.asarray(np.random.default_rng(2).standard_normal(frames.shape), jnp.float32)

  def objective(setting, frames, axis):
    out = knob.apply(setting, frames, channel_axis=axis)
    out = out if axis == -1 else jnp.moveaxis(out, -3, -1)
    return jnp.sum(out * cotangent) + knob.cost(setting, frames, channel_axis=axis), out

  for level in (0.0, 0.45, 1.0):
    setting = _at(knob, level)
    (last, out_last), grad_last = jax.value_and_grad(objective, has_aux=True)(setting, frames, -1)
    (first, out_first), grad_first = jax.value_and_grad(objective, has_aux=True)(
        setting, planes, -3)
    np.testing.assert_allclose(np.asarray(out_first), np.asarray(out_last), atol=1e-6)
    np.testing.assert_allclose(float(first), float(last), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_first), np.asarray(grad_last), rtol=1e-5, atol=1e-6)
    assert knob.apply(setting, frames).shape == frames.shape  # the default is channels last


def test_channel_axis_is_checked():
  frames = _frames()
  scaled = knobs.scale_cost(knobs.resolution(), 2.0)  # combinators pass the option on
  np.testing.assert_allclose(
      float(scaled.cost(jnp.float32(0.5), jnp.moveaxis(frames, -1, -3), channel_axis=-3)),
      2.0 * float(knobs.resolution().cost(jnp.float32(0.5), frames)), rtol=1e-6)
  with pytest.raises(ValueError, match=r"channel_axis must be -1 .* or -3"):
    knobs.resolution().apply(jnp.float32(0.5), frames, channel_axis=1)
  with pytest.raises(ValueError, match=r"3 channels \(axis -3\)"):
    knobs.quantization().apply(jnp.float32(0.5), frames, channel_axis=-3)
  with pytest.raises(ValueError, match=r"rank >= 4, \[\.\.\., T, C, H, W\]"):
    knobs.check_video(frames[0], channel_axis=-3)


@pytest.mark.parametrize("name", NAMES)
def test_public_check_knob_accepts_every_knob(name):
  import knobs.testing

  knobs.testing.check_knob(_knob(name, (19, 27)))


@pytest.mark.parametrize("breakage, message", [
    (lambda k: k._replace(apply=lambda s, x: x[..., ::2, :]), "apply at 0.0"),
    (lambda k: k._replace(apply=lambda s, x: x * jnp.sqrt(s)), "gradient not finite"),
    (lambda k: k._replace(cost=lambda s, x: -jnp.sum(s * x)), "falls"),
    (lambda k: k._replace(cost=lambda s, x: jnp.float32(1.0)), "does not depend"),
    (lambda k: k._replace(round=lambda s: s), "not on a rung"),
])
def test_public_check_knob_names_what_is_broken(breakage, message):
  import knobs.testing

  with pytest.raises(AssertionError, match=message):
    knobs.testing.check_knob(breakage(knobs.resolution()))
