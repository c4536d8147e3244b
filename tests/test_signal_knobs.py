"""Audio and point-cloud knobs: the knob contract (`knobs.testing.check_knob`, the conformance
suite's checks, at odd sizes and at the bounds) and each forward pass against an independent
NumPy/SciPy implementation of the real operation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

import knobs
import knobs.testing

AUDIO = {
    "sample_rate": knobs.sample_rate,
    "bit_depth": knobs.bit_depth,
    "chunk_drop": knobs.chunk_drop,
    "audio_chain": lambda: knobs.chain(
        sample_rate=knobs.scale_cost(knobs.sample_rate(), 0.0, unit="chunks"),
        bit_depth=knobs.scale_cost(knobs.bit_depth(), 0.0, unit="chunks"),
        chunks=knobs.chunk_drop()),
}
POINTS = {
    "point_density": knobs.point_density,
    "point_quantization": knobs.point_quantization,
    "point_range": lambda: knobs.point_range(centre=(30.0, 30.0)),
    "points_chain": lambda: knobs.chain(
        range=knobs.scale_cost(knobs.point_range(centre=(30.0, 30.0)), 0.0, unit="bytes"),
        density=knobs.scale_cost(knobs.point_density(), 0.0, unit="bytes"),
        quantization=knobs.point_quantization()),
}


@pytest.mark.parametrize("name", sorted(AUDIO))
@pytest.mark.parametrize("num", [1601, 333])
def test_audio_knobs_keep_the_contract(name, num):
  knobs.testing.check_knob(AUDIO[name](), knobs.testing.audio_clip(num))


@pytest.mark.parametrize("name", sorted(POINTS))
@pytest.mark.parametrize("num", [301, 37])
def test_point_knobs_keep_the_contract(name, num):
  knobs.testing.check_knob(POINTS[name](), knobs.testing.point_cloud(num))


@pytest.mark.parametrize("name", sorted(AUDIO))
def test_audio_gradients_finite_on_a_batch_and_at_the_bounds(name):
  knob = AUDIO[name]()
  wave = jnp.stack([knobs.testing.audio_clip(97), jnp.zeros(97)])  # silence too
  for level in (0.0, 1.0):
    setting = jax.tree.map(lambda s: jnp.full_like(s, level), knob.init())
    grads = jax.grad(lambda s: jnp.sum(jax.vmap(knob.apply, (None, 0))(s, wave) ** 2))(setting)
    assert all(bool(jnp.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("num", [1601, 1600])
@pytest.mark.parametrize("rung", [0, 1, 2, 3])
def test_sample_rate_is_fft_resampling_down_and_back(num, rung):
  knob = knobs.sample_rate()
  rate = float(knob.values[rung])
  wave = np.asarray(knobs.testing.audio_clip(num))
  sent = round(num * rate / 16000.0)
  sent += sent % 2 == 0  # odd: scipy splits no Nyquist bin, so the two agree exactly
  reference = scipy.signal.resample(scipy.signal.resample(wave, sent), num)
  out = knob.apply(jnp.float32(rung / (len(knob.values) - 1)), jnp.asarray(wave))
  # The knob cuts at rate / 2 exactly; `sent` rounds the bin count, so allow one bin of leakage.
  assert np.sqrt(np.mean((np.asarray(out) - reference) ** 2)) < 0.02 * np.sqrt(np.mean(wave**2))
  assert float(knob.cost(jnp.float32(rung / (len(knob.values) - 1)), jnp.asarray(wave))) == \
      pytest.approx(num * rate / 16000.0, rel=1e-5)


def test_sample_rate_at_the_source_rate_is_the_identity():
  wave = knobs.testing.audio_clip(1601)
  np.testing.assert_allclose(knobs.sample_rate().apply(jnp.float32(1.0), wave), wave, atol=1e-6)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_bit_depth_is_signed_pcm(bits):
  knob = knobs.bit_depth()
  setting = jnp.float32(list(knob.values).index(bits) / (len(knob.values) - 1))
  wave = np.asarray(knobs.testing.audio_clip(501))
  scale = 2 ** (bits - 1)
  pcm = np.clip(np.round(wave * scale), -scale, scale - 1).astype(np.int32)
  np.testing.assert_allclose(knob.apply(setting, jnp.asarray(wave)), pcm / scale, atol=1e-7)


def test_bit_depth_gradient_is_the_noise_scaling():
  """d out / d bits = -ln 2 * rounding error: more bits, proportionally less noise."""
  knob = knobs.bit_depth(bits=(4, 8))
  wave = knobs.testing.audio_clip(101)
  setting = jnp.float32(0.0)
  error = knob.apply(setting, wave) - wave
  jac = jax.jacfwd(knob.apply)(setting, wave)
  np.testing.assert_allclose(jac, -np.log(2) * error * 4.0, rtol=1e-4, atol=1e-7)  # d b / d s = 4


def test_chunk_drop_silences_quiet_chunks_like_numpy():
  knob = knobs.chunk_drop(chunks=7)
  wave = np.asarray(knobs.testing.audio_clip(1601))
  ids = np.minimum(np.arange(1601) * 7 // 1601, 6)
  rms = np.sqrt(np.array([np.mean(wave[ids == c] ** 2) for c in range(7)]))
  for rung, threshold in enumerate(knob.values):
    keep = rms / rms.max() >= threshold
    out = knob.apply(jnp.float32(rung / (len(knob.values) - 1)), jnp.asarray(wave))
    np.testing.assert_allclose(out, wave * keep[ids], atol=1e-7)
    assert float(knob.cost(jnp.float32(rung / (len(knob.values) - 1)), jnp.asarray(wave))) == \
        keep.sum()


def test_point_density_keeps_an_even_spread_of_real_points():
  knob = knobs.point_density()
  cloud = knobs.testing.point_cloud(1000)
  real = np.asarray(cloud.mask) > 0
  for rung, fraction in enumerate(knob.values):
    out = knob.apply(jnp.float32(rung / (len(knob.values) - 1)), cloud)
    kept = np.asarray(out.mask) > 0
    assert not np.any(kept & ~real)  # padding is never sent
    assert abs(kept.sum() - fraction * real.sum()) <= 0.02 * real.sum() + 2
    for part in np.array_split(np.flatnonzero(real), 5):  # even along the cloud's order
      assert abs(kept[part].mean() - fraction) < 0.05
    np.testing.assert_array_equal(out.points, cloud.points)


def test_point_quantization_rounds_coordinates_only():
  knob = knobs.point_quantization()
  cloud = knobs.testing.point_cloud(50)
  for rung, step in enumerate(knob.values):
    out = knob.apply(jnp.float32(rung / (len(knob.values) - 1)), cloud)
    points = np.asarray(cloud.points, np.float64)
    np.testing.assert_allclose(out.points[:, :3], np.round(points[:, :3] / step) * step,
                               atol=1e-4)
    np.testing.assert_array_equal(out.points[:, 3:], cloud.points[:, 3:])


def test_point_range_keeps_the_points_within_the_radius():
  knob = knobs.point_range(centre=(30.0, 30.0))
  cloud = knobs.testing.point_cloud(400)
  points, real = np.asarray(cloud.points), np.asarray(cloud.mask) > 0
  distance = np.hypot(points[:, 0] - 30.0, points[:, 1] - 30.0)
  for rung, radius in enumerate(knob.values):
    setting = jnp.float32(rung / (len(knob.values) - 1))
    out = knob.apply(setting, cloud)
    np.testing.assert_array_equal(np.asarray(out.mask) > 0, real & (distance <= radius))
    assert float(knob.cost(setting, cloud)) == np.sum(real & (distance <= radius))


@pytest.mark.parametrize("bad, message", [
    (jnp.asarray([0.1, jnp.nan]), "NaN"),
    (jnp.asarray([0.1, 3.0]), r"\[-1, 1\]"),
    (jnp.zeros((2, 0)), "non-empty"),
    (jnp.zeros(4, jnp.int16), "floating point"),
])
def test_bad_audio_is_named(bad, message):
  with pytest.raises(ValueError, match=message):
    knobs.sample_rate().apply(jnp.float32(1.0), bad)


@pytest.mark.parametrize("bad, message", [
    (jnp.zeros((5, 3)), "PointCloud"),
    (knobs.PointCloud(jnp.zeros((5, 2)), jnp.ones(5)), "F >= 3"),
    (knobs.PointCloud(jnp.zeros((5, 3)), jnp.ones(4)), "mask must have shape"),
    (knobs.PointCloud(jnp.full((5, 3), jnp.nan), jnp.ones(5)), "NaN"),
    (knobs.PointCloud(jnp.zeros((0, 3)), jnp.ones(0)), "no points"),
])
def test_bad_point_clouds_are_named(bad, message):
  with pytest.raises(ValueError, match=message):
    knobs.point_density().apply(jnp.float32(1.0), bad)
