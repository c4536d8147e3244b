"""Depth video: the renderer against a direct per-point projection, FFV1 bytes and decoding,
the depth-quantization knob's contract and the stream's byte estimate against FFV1's real bytes,
the trained segmenter and the proxy. OneAdapt and its baselines through `oneadapt run --modality
depth`, and AccGrad at the bounds: tests/test_streams.py, with audio and LiDAR."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

import knobs
import knobs.testing
from models import trained
from oneadapt_jax import core, depth, proxy_check, train, workloads
from oneadapt_jax.workloads import depth as depth_kind
from tests import clips

# --------------------------------------------------------------------------- the renderer


def _brute_force(points, ground, camera):
  """Per pixel, the nearest point whose splat covers it: each point projected on its own with
  the pinhole written out, every pixel checked against every point."""
  p, h = np.radians(camera.pitch), camera.heading
  forward = np.array([np.cos(p) * np.cos(h), np.cos(p) * np.sin(h), -np.sin(p)])
  right = np.array([np.sin(h), -np.cos(h), 0.0])
  up = np.cross(right, forward)
  f = depth.WIDTH / 2 / np.tan(np.radians(depth.FOV / 2))
  out = np.zeros((depth.HEIGHT, depth.WIDTH)), np.full((depth.HEIGHT, depth.WIDTH), 255)
  best = np.full((depth.HEIGHT, depth.WIDTH), np.inf)
  for point, label in zip(points, ground):
    d = point - np.asarray(camera.position)
    z = float(d @ forward)
    if not depth.NEAR < z <= depth.MAX_RANGE:
      continue
    col = int(np.floor(depth.WIDTH / 2 + f * float(d @ right) / z))
    row = int(np.floor(depth.HEIGHT / 2 - f * float(d @ up) / z))
    radius = int(min(depth.MAX_SPLAT, round(f * depth.SPACING / 2 / z)))
    for r in range(row - radius, row + radius + 1):
      for c in range(col - radius, col + radius + 1):
        if 0 <= r < depth.HEIGHT and 0 <= c < depth.WIDTH and z < best[r, c]:
          best[r, c] = z
          out[0][r, c], out[1][r, c] = round(z * 1000), label
  return out


@pytest.mark.parametrize("heading", [0.0, 2.0])
def test_render_is_the_nearest_point_of_a_direct_projection(heading):
  rng = np.random.default_rng(int(heading))
  camera = depth.Camera((0.0, 0.0, 30.0), heading)
  forward, _, _ = camera.axes()
  # points around the view: ground below, a few nearer clusters, some behind and out of range
  centre = np.asarray(camera.position) + forward * 35.0
  points = centre + rng.normal(0, [15.0, 15.0, 3.0], (600, 3))
  points = np.concatenate([points, (np.asarray(camera.position) - forward * 5)[None],
                           np.asarray(camera.position) + forward[None] * 80.0])
  ground = rng.uniform(size=len(points)) < 0.5
  got_depth, got_class = depth.render(camera, points, ground)
  want_depth, want_class = _brute_force(points, ground, camera)
  assert got_depth.dtype == np.uint16 and got_class.dtype == np.uint8
  np.testing.assert_array_equal(got_depth, want_depth)
  np.testing.assert_array_equal(got_class, want_class)
  assert 0.2 < np.mean(got_depth > 0) < 1.0
  with pytest.raises(ValueError, match=r"points \[N, 3\] and ground \[N\]"):
    depth.render(camera, points[:, :2], ground)


def test_stream_is_a_real_flight_over_held_out_ground():
  frames, classes = depth.stream()
  assert frames.shape == (400, depth.HEIGHT, depth.WIDTH) and frames.dtype == np.uint16
  returns = frames > 0
  assert 0.7 < returns.mean() < 0.95
  assert np.array_equal(returns, classes != depth.NO_RETURN)
  seen = classes[returns]
  assert 0.3 < np.mean(seen == 1) < 0.8  # ground and not ground both well represented
  held = depth.held_out(depth.stream_poses())
  assert 150 < held.sum() < 400  # most of it over terrain the model never saw
  for pose in depth.training_poses(np.random.default_rng(0), 5):
    assert depth.view_x(pose)[1] < depth.split_x()  # training views stay west
  # a steady flight: consecutive frames overlap, so depth changes little between them
  change = np.mean(np.abs(np.diff(frames[:20].astype(float), axis=0)) < 500)
  assert change > 0.5


# --------------------------------------------------------------------------- the codec


def test_ffv1_is_lossless_and_its_bytes_fall_with_bits_resolution_and_rate():
  frames, _ = depth.stream()
  codes = frames[:10]
  extradata, packets = depth.encode_ffv1(codes)
  assert len(packets) == 10
  np.testing.assert_array_equal(depth.decode_ffv1(extradata, packets, codes.shape[1:]), codes)
  segment = frames[:10, ..., None].astype(np.float32) / 65535
  best = {"resolution": 1.0, "frame_rate": 10.0, "depth_quantization": 16.0}
  full = depth.send(segment, best)
  np.testing.assert_allclose(full.frames, segment, atol=0.5 / 65535)  # lossless at the top
  for name, lower in (("depth_quantization", 8.0), ("resolution", 0.5), ("frame_rate", 5.0)):
    cheaper = depth.send(segment, {**best, name: lower})
    assert cheaper.num_bytes < 0.75 * full.num_bytes, name
  assert depth.send(segment, {**best, "frame_rate": 5.0}).sent.sum() == 5
  for bad, message in (({**best, "depth_quantization": 17.0}, "2 to 16 bits"),
                       ({**best, "frame_rate": 20.0}, "frame_rate"),
                       ({**best, "resolution": 0.0}, "resolution"),
                       ({"resolution": 1.0}, "needs depth_quantization, frame_rate")):
    with pytest.raises(ValueError, match=message):
      depth.send(segment, bad)
  with pytest.raises(ValueError, match="NaN"):
    depth.send(np.full_like(segment, np.nan), best)
  with pytest.raises(ValueError, match="channels|shape"):
    depth.send(np.repeat(segment, 3, axis=-1), best)


@pytest.mark.parametrize("bits", [4.0, 10.0])
def test_the_knobs_forward_pass_is_what_the_sender_delivers(bits):
  """At full resolution the chain's quantization and held frames are the sender's, exactly (up
  to the sender's 16-bit millimetres)."""
  frames, _ = depth.stream()
  segment = jnp.asarray(frames[30:40, ..., None] / 65535, jnp.float32)
  knob = depth_kind.knob_chain()
  for rate in (10.0, 2.0):
    config = {"resolution": 1.0, "frame_rate": rate, "depth_quantization": bits}
    setting = core.setting_of(knob, config)
    ours = np.asarray(knob.apply(setting, segment))
    sent = depth.send(np.asarray(segment), config)
    np.testing.assert_allclose(ours, sent.frames, atol=1.5 / 65535)


def test_the_bit_estimate_ranks_configurations_as_ffv1_bytes_do():
  frames, _ = depth.stream()
  segment = frames[100:110, ..., None].astype(np.float32) / 65535
  knob = depth_kind.knob_chain()
  cost = jax.jit(knob.cost)
  estimates, real = [], []
  for config in workloads.build("depth", max_segments=1).grid()[::3]:
    setting = core.setting_of(knob, config)
    estimates.append(float(cost(setting, jnp.asarray(segment))))
    real.append(depth.send(segment, config).num_bytes)
  assert spearmanr(estimates, real).statistic > 0.9


# --------------------------------------------------------------------------- the knob


@pytest.mark.parametrize("size", [(19, 27), (6, 5)])
def test_depth_quantization_keeps_the_knob_contract(size):
  clip = knobs.testing.depth_clip(*size)
  knobs.testing.check_knob(knobs.depth_quantization(), clip)
  knobs.testing.check_knob(depth_kind.knob_chain(), clip)


def test_depth_quantization_is_exact_and_keeps_no_return():
  knob = knobs.depth_quantization()
  depth_values = jnp.asarray([0.0, 0.1, 0.5, 0.999, 1.0]).reshape(1, 1, 5, 1)
  for rung, bits in enumerate(knob.values):
    out = np.asarray(knob.apply(jnp.float32(rung / (len(knob.values) - 1)), depth_values))
    levels = 2.0 ** bits - 1
    np.testing.assert_allclose(out.ravel(), np.round(np.asarray(depth_values).ravel() * levels)
                               / levels, atol=1e-6)
    assert out.ravel()[0] == 0.0
  with pytest.raises(ValueError, match="channels|shape"):
    knob.apply(knob.init(), jnp.zeros((2, 8, 8, 3)))
  with pytest.raises(ValueError, match="within 2..16"):
    knobs.depth_quantization(bits=(1, 8))


def test_every_knob_moves_the_cost_and_bits_move_the_output_in_gradient():
  """The straight-through rounding carries a gradient on the rungs too (the exact level count
  there once had none, so AccGrad never saw the bits), and the byte estimate rises with every
  knob."""
  segment = jnp.asarray(depth.stream()[0][:10, ..., None] / 65535, jnp.float32)
  knob = depth_kind.knob_chain()
  for level in (0.0, 0.4, 1.0):  # 0.4: 8 bits, a rung
    setting = jax.tree.map(lambda s: jnp.full_like(s, level), knob.init())
    grads = jax.grad(knob.cost)(setting, segment)
    assert all(float(g) > 0 for g in grads.values()), (level, grads)
  quantization = knobs.depth_quantization()
  for level in (0.0, 0.4):
    grad = jax.grad(lambda s: jnp.sum(quantization.apply(s, segment) ** 2))(jnp.float32(level))
    assert float(jnp.abs(grad)) > 0


def test_residual_is_loco_i_median_prediction():
  codes = np.random.default_rng(0).integers(0, 50, (1, 5, 6, 1)).astype(np.float32)
  got = np.asarray(knobs._depth.median_residual(jnp.asarray(codes)))[0, ..., 0]
  x = np.pad(codes[0, ..., 0], ((1, 0), (1, 0)))
  for r in range(5):
    for c in range(6):
      a, b, d = x[r + 1, c], x[r, c + 1], x[r, c]
      assert got[r, c] == x[r + 1, c + 1] - np.median([a, b, a + b - d])


# --------------------------------------------------------------------------- the model


def test_depthseg_segments_held_out_ground_and_trains_reproducibly():
  info = trained.manifest("depthseg")
  assert info["seed"] == 0
  assert info["held_out_accuracy"] >= 0.75
  assert info["held_out_accuracy"] > info["held_out_majority_accuracy"] + 0.15
  a, _ = train.train_depthseg(3, steps=2, batch=2, frames=4, progress=False)
  b, _ = train.train_depthseg(3, steps=2, batch=2, frames=4, progress=False)
  clips.assert_same_weights(a, b)


# --------------------------------------------------------------------------- adaptation


def test_best_quality_reproduces_the_reference_and_the_truth_is_measured():
  workload = workloads.build("depth", max_segments=2)
  for i in range(2):
    outputs, best = workload.observe(i, workload.best)
    assert best.accuracy == 1.0 and best.frames_sent == 10
    assert 0.5 < depth_kind.truth_metric(np.asarray(outputs), workload.classes[i]) <= 1.0
    cheapest = workload.evaluate(i, workload.grid()[0])
    assert cheapest.bytes < best.bytes / 10 and cheapest.frames_sent == 1


def test_the_proxy_ranks_configurations_as_the_metric_does():
  """Over resolution x bits at the full frame rate (a held frame is as confident as the frame it
  repeats, so no proxy's value sees the frame rate; its gradient does, through the hold). The
  whole stream measured 0.82 per segment; here its first three."""
  workload = workloads.build("depth", max_segments=3)
  configs = [c for c in workload.grid() if c["frame_rate"] == depth.FPS]
  result = proxy_check.check(workload, configs=configs)
  assert result["spearman_per_segment_mean"] > 0.6
