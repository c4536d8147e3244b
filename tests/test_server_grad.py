"""OneAdapt's AccGrad as deployed: DNNGrad on the frames the server decoded, from the forward pass
its inference already ran, pulled back through the knob chain on the camera."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from oneadapt_jax import codec, core, proxies
from oneadapt_jax.core import Controller, Tradeoff, config_of


@pytest.fixture(scope="module")
def carphone():
  """carphone's face detection, its server's forward passes counted frame by frame."""
  from oneadapt_jax.workloads.video import build

  workload = build(task="detection", source="carphone", max_segments=2)
  frames_run = []
  infer = workload._infer

  def counting(x):
    jax.debug.callback(lambda n: frames_run.append(int(n)), x.shape[0])
    return infer(x)

  workload._infer = jax.jit(counting)
  return workload, frames_run


@pytest.fixture()
def counted(carphone):
  """The workload with nothing sent yet and the count at zero."""
  workload, frames_run = carphone
  workload._memo.clear()
  frames_run.clear()
  return workload, frames_run


def _step(bound, workload, frame_rate):
  """One AccGrad on segment 1 at a fixed setting: `(setting, config, raw, server's (proxy,
  cotangent, extra forwards), camera's gradient)`."""
  setting = {"resolution": jnp.float32(0.6), "frame_rate": jnp.float32(frame_rate),
             "qp": jnp.float32(0.45)}
  config = config_of(workload.knob, setting)
  raw = workload.raw(1)
  server = bound.server(workload, 1, config)
  grad, _, _ = bound.jitted.camera(setting, raw, server[1])
  return setting, config, raw, server, grad


def test_the_gradient_is_the_decoded_frames_dnngrad_through_the_cameras_vjp(counted):
  workload, frames_run = counted
  bound = Controller().bind(workload)
  assert bound.picked == (9,)  # the last frame, as the paper back-propagates
  setting, config, raw, (value, cotangent, extra), grad = _step(bound, workload, 1.0)

  # The reference, independently: x264 at the configuration, the model's gradient at the last
  # decoded frame, pulled back through the knob chain at the raw frames.
  encoded = codec.encode(workload.segments[1].frames, resolution=config["resolution"],
                         qp=config["qp"], preset=workload.preset)
  decoded = jnp.asarray(encoded.as_float()[9:10])
  model = workload.model
  reference_value, dnn_grad = jax.jit(jax.value_and_grad(
      lambda x: proxies.detection(model(x))))(decoded)
  _, pullback = jax.vjp(lambda s: workload.knob.apply(s, raw)[9:10], setting)
  (expected,) = pullback(dnn_grad)
  assert float(value) == pytest.approx(float(reference_value), rel=1e-4)
  scale = float(jnp.abs(dnn_grad).max())  # jitted and eager sums differ in float rounding
  np.testing.assert_allclose(np.asarray(cotangent), np.asarray(dnn_grad), rtol=1e-3,
                             atol=1e-3 * scale)
  for name in setting:
    assert float(grad[name]) == pytest.approx(float(expected[name]), rel=1e-3, abs=1e-6)
  assert any(abs(float(g)) > 0 for g in jax.tree.leaves(grad))
  # One forward pass per frame sent: the backward pass reused inference's.
  assert extra == 0 and sum(frames_run) == workload.evaluate(1, config).frames_sent


def test_a_run_infers_each_frame_sent_once_and_nothing_more(counted):
  workload, frames_run = counted
  (records,) = core.run_oneadapt(workload, [Tradeoff(lam=0.3)], controller=Controller())
  assert sum(frames_run) == sum(r.dnn_frames for r in records)
  assert all(r.backward_passes == 1 for r in records)
  # the normalising forward pass at the best quality, on the first segment only
  assert [r.profiling_frames for r in records] == [1, 0]


def test_the_fused_estimator_runs_its_own_forward_pass_and_is_charged_for_it(counted):
  workload, _ = counted
  (records,) = core.run_oneadapt(workload, [Tradeoff(lam=0.3)],
                                 controller=Controller(grad_frames=2, estimator="fused"))
  assert [r.profiling_frames for r in records] == [4, 2]


def test_an_unknown_estimator_or_preset_is_refused_with_the_choices():
  with pytest.raises(ValueError, match="decoded, fused, saliency, reencode"):
    Controller(estimator="magic")
  with pytest.raises(ValueError, match="rungs, paper"):
    core.oneadapt(None, Tradeoff(lam=0.3), preset="magic")
  with pytest.raises(ValueError, match="learning_rate"):
    core.oneadapt(None, Tradeoff(lam=0.3), learnin_rate=0.1)


def test_the_reencoding_estimator_is_the_authors_finite_difference_over_real_encodes(counted):
  """Brute force: encode the other rung of each knob's pair with x264 by hand, weigh each
  encode's error against the raw frame by |DNNGrad| and take the differences over the pair."""
  workload, frames_run = counted
  bound = Controller(estimator="reencode").bind(workload)
  setting = {"resolution": jnp.float32(0.6), "frame_rate": jnp.float32(0.0),
             "qp": jnp.float32(1.0)}
  config = config_of(workload.knob, setting)
  frames = workload.segments[1].frames
  _, cotangent, _ = bound.server(workload, 1, config)
  grad, grad_cost = bound.reencode(workload, 1, config, cotangent, workload.raw(1))
  assert sum(frames_run) == workload.evaluate(1, config).frames_sent  # no inference re-run

  weight = np.abs(np.asarray(cotangent, np.float64))
  # X_raw: the chain's output at its best quality (free on the camera; nearly the raw frame)
  best = workload.knob.apply(workload.knob.init(), workload.raw(1))[9:10]
  original = np.asarray(best, np.float64)
  assert np.abs(original - frames[9:10] / 255.0).mean() < 0.01

  def loss_and_bytes(c):
    fps = c["frame_rate"] if c["frame_rate"] < workload.source_fps else None
    encoded = codec.encode(frames, resolution=c["resolution"], qp=c["qp"], fps=fps,
                           source_fps=workload.source_fps, preset=workload.preset)
    error = np.abs(encoded.as_float()[9:10].astype(np.float64) - original)
    return float(np.sum(weight * error)), encoded.num_bytes

  ladders = {name: [float(v) for v in values] for name, values in workload.knob.values.items()}
  for name, (low, high) in {"resolution": (2, 3), "frame_rate": (0, 1),
                            "qp": (len(ladders["qp"]) - 2, len(ladders["qp"]) - 1)}.items():
    width = (high - low) / (len(ladders[name]) - 1)
    (loss_low, bytes_low), (loss_high, bytes_high) = (
        loss_and_bytes({**config, name: ladders[name][k]}) for k in (low, high))
    assert grad[name] == pytest.approx((loss_low - loss_high) / width, rel=1e-4, abs=1e-6)
    assert grad_cost[name] == pytest.approx((bytes_high - bytes_low) / width)
  assert grad_cost["resolution"] > 0 and grad_cost["qp"] > 0  # more quality, more bytes


def test_a_reencoding_run_charges_its_encodes_and_normalises_by_real_bytes(counted):
  workload, frames_run = counted
  (records,) = core.run_oneadapt(workload, [Tradeoff(lam=0.3)],
                                 controller=Controller(estimator="reencode"))
  assert sum(frames_run) == sum(r.dnn_frames for r in records)  # no forward pass beyond
  assert [r.camera_encodes for r in records] == [5, 4]  # the sent one, 3 knobs, the best once
  assert [r.profiling_frames for r in records] == [1, 0]
  with pytest.raises(ValueError, match="per block"):
    from oneadapt_jax.workloads.video import build

    Controller(estimator="reencode").bind(build(task="detection", source="carphone",
                                                chain="roi", max_segments=1))


def test_another_proxy_is_ascended_by_name_and_an_unknown_one_is_refused(counted):
  workload, _ = counted
  bound = Controller(proxy="expected_f1").bind(workload)
  assert bound._proxy is proxies.expected_f1
  with pytest.raises(ValueError, match="expected_f1"):
    Controller(proxy="magic").bind(workload)


def test_the_saliency_estimator_descends_the_weighted_error_through_the_chain(counted):
  """Against `jax.grad` of the authors' saliency-weighted error written out directly."""
  workload, _ = counted
  bound = Controller(estimator="saliency").bind(workload)
  setting, _, raw, (_, cotangent, _), grad = _step(bound, workload, 0.8)
  original = workload.knob.apply(workload.knob.init(), raw)[9:10]
  expected = jax.grad(lambda s: -jnp.sum(jnp.abs(cotangent) * jnp.abs(
      workload.knob.apply(s, raw)[9:10] - original)))(setting)
  for name in setting:
    assert float(grad[name]) == pytest.approx(float(expected[name]), rel=1e-3, abs=1e-6)
  # the error grows as quality falls: its gradient in the quality setting is an ascent
  assert float(grad["qp"]) > 0 and float(grad["resolution"]) > 0


@functools.cache
def _odd_sized():
  """A synthetic 3-frame segment of odd size (37x29), under carphone's face detector."""
  import models
  from oneadapt_jax import data
  from oneadapt_jax.workloads.video import VideoWorkload

  frames = np.random.default_rng(0).integers(0, 256, (3, 29, 37, 3), dtype=np.uint8)
  return VideoWorkload("detection", "odd", [data.Segment(frames, "odd", 0, 10.0)],
                       models.load("blazeface"))


@functools.cache
def _in_planes(workload):
  """The workload with its encoding chain passing 4:2:0 planes (`knob_chain`)."""
  return dataclasses.replace(workload, ycbcr420=True)


@functools.cache
def _one_pass_and_apart(workload):
  """Jitted once per workload (the levels reuse them): `shown`; `shown_and_cost` and its
  pullback of a direction; the chain on every frame, sliced, its bytes, and their pullback."""
  def passes(fn):
    def run(setting, raw, direction):
      out, pullback = jax.vjp(lambda s: fn(s, raw), setting)
      return out, pullback(direction)[0]
    return jax.jit(run)

  picked = (workload.frames_per_segment - 1,)
  return (jax.jit(lambda s, raw: workload.shown(s, raw, picked)),
          passes(lambda s, raw: workload.shown_and_cost(s, raw, picked)),
          passes(lambda s, raw: (workload.knob.apply(s, raw)[..., picked, :, :, :],
                                 workload.knob.cost(s, raw))))


@pytest.mark.parametrize("level", [0.0, 0.55, 1.0])
def test_shown_and_cost_is_shown_and_the_chains_bytes_in_one_pass(carphone, level):
  """The video workload codes the picked frames alone for `shown` and `shown_and_cost`: equal
  to the chain's output on every frame, sliced, and to its bytes, in value and in both
  pullbacks, at the bounds and mid-ladder, on carphone (RGB and 4:2:0 planes between the knobs)
  and on an odd frame size."""
  for workload in (carphone[0], _odd_sized(), _in_planes(carphone[0])):
    raw = workload.raw(0)
    setting = {name: jnp.float32(level) for name in workload.knob.values}
    shown_alone, joint, apart = _one_pass_and_apart(workload)
    shape = (1, *raw.shape[1:])
    cotangent = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    alone = np.asarray(shown_alone(setting, raw))
    for direction in ((cotangent, jnp.float32(0.0)), (jnp.zeros(shape), jnp.float32(1.0))):
      (shown, cost), grad = joint(setting, raw, direction)
      (shown_ref, cost_ref), reference = apart(setting, raw, direction)
      np.testing.assert_allclose(np.asarray(shown), np.asarray(shown_ref), atol=1e-6)
      np.testing.assert_allclose(alone, np.asarray(shown_ref), atol=1e-6)
      assert float(cost) == pytest.approx(float(cost_ref), rel=1e-5)
      for name in setting:
        assert np.isfinite(float(grad[name]))
        assert float(grad[name]) == pytest.approx(float(reference[name]), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("estimator", ["decoded", "saliency"])
def test_camera_step_is_the_camera_then_the_step(carphone, estimator):
  """The loop's fused camera step (one pullback of the objective's cotangent) gives the setting
  and optimiser state that `camera` (the two terms apart) then `step` give."""
  workload = carphone[0]
  bound = Controller(estimator=estimator).bind(workload)
  setting, _, raw, (_, cotangent, _), _ = _step(bound, workload, 0.75)
  opt_state = bound.optimiser.init(setting)
  refs = (jnp.float32(2.5), jnp.float32(4000.0))
  for lam in (0.0, 0.3, 30.0):
    grad, _, grad_cost = bound.jitted.camera(setting, raw, cotangent)
    expected = bound.jitted.step(setting, opt_state, grad, grad_cost, *refs, jnp.float32(lam))
    got = bound.jitted.camera_step(setting, opt_state, raw, cotangent, *refs, jnp.float32(lam))
    # The two terms can nearly cancel (carphone's QP at lambda 30: -97 + 92), so float rounding
    # is relative to their magnitudes: the step's state with the terms' absolute values added.
    scale = bound.jitted.step(setting, opt_state, jax.tree.map(lambda g: -jnp.abs(g), grad),
                              jax.tree.map(jnp.abs, grad_cost), *refs, jnp.float32(lam))
    for a, b, m in zip(*map(jax.tree.leaves, (got, expected, scale)), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                                 atol=1e-6 + 1e-4 * float(np.max(np.abs(np.asarray(m)))))


@pytest.mark.slow  # about a minute of compiling
def test_a_saliency_run_alone_after_a_batch_of_them(carphone):
  """Runs batched, then one run, of the saliency estimator on one workload: the one run used to
  fail in JAX ("Execution supplied 5 buffers but compiled program expected 15") while the
  best-quality frames were a jitted function called from both programs."""
  workload = carphone[0]
  controller = Controller(estimator="saliency")
  batched = core.run_oneadapt(workload, [Tradeoff(lam=0.1), Tradeoff(lam=1.0)],
                              controller=controller)
  (alone,) = core.run_oneadapt(workload, [Tradeoff(lam=1.0)], controller=controller)
  assert [r.config for r in alone] == [r.config for r in batched[1]]
