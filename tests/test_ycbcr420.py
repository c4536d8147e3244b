"""The video knobs passing 4:2:0 planes (`knobs.YCbCr420`): the resolution filter's chroma
folded to half size, the frame rate holding each plane, the quantization coding them as they lie,
and the video workload's chain that runs them, against SciPy's DCT, the RGB path and x264-free
NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import knobs
from tests import clips
from tests.test_knob_conformance import scipy_lowpass


def _means2(planes: np.ndarray) -> np.ndarray:
  *lead, h, w = planes.shape
  return planes.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def _smooth(num_frames=3, height=32, width=48) -> jax.Array:
  """Frames the filter never rings out of range on: a slow colour gradient in [0.2, 0.8]."""
  return jnp.asarray(0.2 + 0.6 * clips.pan(num_frames, height, width))


# (10, 6): half sizes 5 and 3, odd, where the fold's interleaved order has no middle pair.
@pytest.mark.parametrize("size", [(16, 16), (18, 20), (10, 6), (144, 176)])
def test_lowpass_pooled_is_the_low_pass_then_the_2x2_means(size):
  from knobs import _resolution

  @jax.jit
  def pooled(planes, scale):
    masks = (_resolution.lowpass_mask(n, scale, rolloff=0.15) for n in size)
    return _resolution.lowpass_pooled(planes, *masks)

  planes = np.asarray(jax.random.uniform(jax.random.key(size[0]), (2, 3, *size)))
  for scale in (0.25, 0.6, 1.0):
    np.testing.assert_allclose(pooled(jnp.asarray(planes), jnp.float32(scale)),
                               _means2(scipy_lowpass(planes[..., None], scale, 0.15,
                                                     clip=False)[..., 0]), atol=2e-6)


def test_ycbcr420_is_bt601_full_range_with_chroma_averaged():
  rgb = np.zeros((1, 2, 4, 3), np.float32)
  rgb[:, :, :2] = (1.0, 0.0, 0.0)   # red on the left 2x2 block
  rgb[:, :, 2:] = (0.2, 0.4, 0.9)
  planes = knobs.ycbcr420(jnp.asarray(rgb))
  r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
  y = 0.299 * r + 0.587 * g + 0.114 * b
  np.testing.assert_allclose(planes.luma[:, 0], y, atol=1e-6)
  np.testing.assert_allclose(planes.chroma[:, 0], _means2(0.5 + (b - y) / 1.772), atol=1e-6)
  np.testing.assert_allclose(planes.chroma[:, 1], _means2(0.5 + (r - y) / 1.402), atol=1e-6)
  first = knobs.ycbcr420(jnp.moveaxis(jnp.asarray(rgb), -1, -3), channel_axis=-3)
  for a, b in zip(first, planes, strict=True):
    np.testing.assert_array_equal(a, b)


def test_resolution_in_planes_is_the_planes_of_its_rgb_output_where_nothing_clips():
  """In value and in the pullback of a cotangent on both planes: the filter, the conversion and
  the pooling are linear and commute; only the clips differ, and nothing here reaches them."""
  frames = _smooth()
  knob = knobs.resolution()
  rng = np.random.default_rng(0)
  cotangent = knobs.YCbCr420(
      jnp.asarray(rng.standard_normal((3, 1, 32, 48)), jnp.float32),
      jnp.asarray(rng.standard_normal((3, 2, 16, 24)), jnp.float32))

  def pulled(fn):
    def run(setting):
      out, pullback = jax.vjp(fn, setting)
      return out, pullback(cotangent)[0]
    return jax.jit(run)

  in_planes = pulled(lambda s: knob.apply(s, frames, ycbcr420=True))
  from_rgb = pulled(lambda s: knobs.ycbcr420(knob.apply(s, frames)))
  for setting in (0.0, 0.37, 0.8, 1.0):
    (planes, grad), (reference, grad_reference) = (f(jnp.float32(setting))
                                                   for f in (in_planes, from_rgb))
    for a, b in zip(planes, reference, strict=True):
      np.testing.assert_allclose(a, b, atol=2e-6)
    assert np.isfinite(float(grad))
    assert float(grad) == pytest.approx(float(grad_reference), rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("setting", [0.0, 1.0])
def test_resolution_in_planes_clips_each_plane_and_its_gradient_is_finite(setting):
  """A checkerboard rings past black and white; each 8-bit plane is clipped to its range, and
  the setting's gradient is finite at the ladder's ends."""
  frames = jnp.asarray(np.kron(np.indices((4, 6)).sum(0) % 2, np.ones((8, 8)))[None, :, :, None]
                       * np.array([1.0, 0.2, 0.9]), jnp.float32)
  knob = knobs.resolution()
  planes = knob.apply(jnp.float32(setting), frames, ycbcr420=True)
  for plane in planes:
    assert 0.0 <= float(plane.min()) and float(plane.max()) <= 1.0
  grad = jax.grad(lambda s: sum(jnp.sum(p ** 2) for p in knob.apply(s, frames, ycbcr420=True)))
  assert np.isfinite(float(grad(jnp.float32(setting))))


@pytest.mark.parametrize("make", [knobs.quantization, lambda: knobs.roi_quality((32, 48))])
@pytest.mark.parametrize("channel_axis", [-1, -3])
def test_quantization_codes_planes_as_it_codes_the_rgb_they_come_from(make, channel_axis):
  """The RGB path converts and pools, then codes: given those planes, the same reconstruction
  (in the layout asked for) and the same bytes, in value and gradient."""
  frames = jnp.asarray(clips.pan(3, 32, 48))
  knob = make()
  planes = knobs.ycbcr420(frames)
  setting = jax.tree.map(lambda x: 0.4 * x, knob.init())
  out = knob.apply(setting, planes, channel_axis=channel_axis)
  reference = knob.apply(setting, frames)
  if channel_axis == -3:
    out = jnp.moveaxis(out, -3, -1)
  # The planes' values differ from the RGB path's in float rounding (the scale is applied after
  # the conversion), which can flip a coefficient lying on a rounding boundary: allow a few.
  assert float(jnp.mean(jnp.abs(out - reference))) < 1e-4
  assert float(knob.cost(setting, planes)) == pytest.approx(float(knob.cost(setting, frames)),
                                                            rel=1e-5)
  grad = jax.grad(lambda s: knob.cost(s, planes))(setting)
  grad_reference = jax.grad(lambda s: knob.cost(s, frames))(setting)
  np.testing.assert_allclose(grad, grad_reference, rtol=1e-4, atol=1e-3)


def test_frame_rate_holds_each_plane_alike():
  planes = knobs.ycbcr420(jnp.asarray(clips.pan(6, 16, 32)))
  knob = knobs.frame_rate(source_fps=10.0)
  setting = jnp.float32(0.62)
  held = knob.apply(setting, planes)
  np.testing.assert_array_equal(held.luma, knob.apply(setting, planes.luma, channel_axis=-3))
  np.testing.assert_array_equal(held.chroma, knob.apply(setting, planes.chroma, channel_axis=-3))
  assert float(knob.cost(setting, planes)) == float(knob.cost(setting, planes.luma))
  cotangent = jax.tree.map(lambda p: jnp.cos(7.0 * p), planes)
  grad = jax.grad(lambda s: sum(jnp.vdot(c, h) for c, h in zip(
      cotangent, knob.apply(s, planes), strict=True)))(setting)
  apart = sum(jax.grad(lambda s, c=c, p=p: jnp.vdot(c, knob.apply(s, p, channel_axis=-3)))(setting)
              for c, p in zip(cotangent, planes, strict=True))
  assert float(grad) == pytest.approx(float(apart), rel=1e-5)


def test_planes_that_do_not_fit_are_named():
  frames = jnp.asarray(clips.pan(2, 36, 48))
  with pytest.raises(ValueError, match=r"ycbcr420=True needs an even frame size .* 9x48"):
    knobs.resolution().apply(jnp.float32(0.5), frames[:, :9], ycbcr420=True)
  with pytest.raises(ValueError, match=r"4:2:0 needs an even frame size, got 36x47"):
    knobs.ycbcr420(frames[:, :, :47])
  planes = knobs.ycbcr420(frames)  # 36 rows: not whole macroblocks
  with pytest.raises(ValueError, match=r"whole 16x16 macroblocks; got 36x48"):
    knobs.quantization().apply(jnp.float32(0.5), planes)
  fits = knobs.ycbcr420(frames[:, :32])
  with pytest.raises(ValueError, match=r"chroma_subsampling=False"):
    knobs.quantization(chroma_subsampling=False).apply(jnp.float32(0.5), fits)
  with pytest.raises(ValueError, match=r"frames.chroma must be \(2, 2, 16, 24\)"):
    knobs.quantization().apply(jnp.float32(0.5), fits._replace(chroma=fits.chroma[..., :8]))
  with pytest.raises(ValueError, match=r"frames.luma .*NaN"):
    knobs.frame_rate().apply(jnp.float32(0.5), fits._replace(luma=fits.luma.at[0].set(jnp.nan)))


# -------------------------------------------------------------------------- the video chain


@pytest.fixture(scope="module")
def carphone_raw():
  from oneadapt_jax import data

  segment = data.clip_segments("carphone")[0]
  return jnp.asarray(segment.as_float()), segment.fps


def test_video_chain_in_planes_stays_near_the_rgb_chain(carphone_raw):
  """`knob_chain(ycbcr420=True)` passes planes on carphone (176x144, whole macroblocks), the
  default chain RGB: they differ where the filter's ringing clips (RGB against each plane) and
  where that moves a coefficient across a rounding boundary. Bounded here on a real clip: the
  pixels, the bytes and each knob's gradient under the clip as the cotangent."""
  from oneadapt_jax.workloads.video import _workload

  raw, fps = carphone_raw
  fused = _workload.knob_chain(fps, ycbcr420=True)
  plain = _workload.knob_chain(fps)
  def passes(knob, setting):  # the knobs' own jitted pieces, composed eagerly: no long compile
    out, pullback = jax.vjp(lambda s: knob.apply(s, raw), setting)
    return out, knob.cost(setting, raw), pullback(raw)[0]

  for level in (0.0, 0.3, 0.55, 1.0):
    setting = {name: jnp.float32(level) for name in fused.values}
    (out, cost, grad), (out_plain, cost_plain, grad_plain) = (
        passes(k, setting) for k in (fused, plain))
    difference = np.abs(np.asarray(out) - np.asarray(out_plain))
    assert difference.mean() < 5e-4 and (difference > 1 / 255).mean() < 0.03, level
    if level == 1.0:  # no filter, no clip reached: the same pixels
      np.testing.assert_allclose(out, out_plain, atol=1e-6)
    assert float(cost) == pytest.approx(float(cost_plain), rel=1e-3)
    for name in setting:
      assert np.isfinite(float(grad[name]))
      assert float(grad[name]) == pytest.approx(float(grad_plain[name]), rel=0.05), name


def test_video_chain_runs_rgb_where_frames_are_not_whole_macroblocks(carphone_raw):
  from oneadapt_jax.workloads.video import _workload

  raw, fps = carphone_raw
  raw = raw[:, :136, :170]
  fused = _workload.knob_chain(fps, ycbcr420=True)
  plain = _workload.knob_chain(fps)
  setting = {name: jnp.float32(0.3) for name in fused.values}
  np.testing.assert_array_equal(fused.apply(setting, raw), plain.apply(setting, raw))
  assert float(fused.cost(setting, raw)) == float(plain.cost(setting, raw))
  with pytest.raises(ValueError, match=r"setting must be a dict with keys"):
    fused.apply({"resolution": jnp.float32(0.3)}, raw)
