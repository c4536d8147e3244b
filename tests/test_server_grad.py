"""OneAdapt's AccGrad as deployed: DNNGrad on the frames the server decoded, from the forward pass
its inference already ran, pulled back through the knob chain on the camera."""

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


def test_the_gradient_is_the_decoded_frames_dnngrad_through_the_cameras_vjp(counted):
  workload, frames_run = counted
  bound = Controller().bind(workload)
  assert bound.picked == (9,)  # the last frame, as the paper back-propagates
  setting = {"resolution": jnp.float32(0.6), "frame_rate": jnp.float32(1.0),
             "qp": jnp.float32(0.45)}
  config = config_of(workload.knob, setting)
  raw = workload.raw(1)
  value, cotangent, extra = bound.server(workload, 1, config)
  grad, _, _ = bound.jitted[2](setting, raw, cotangent)

  # The reference, independently: x264 at the configuration, the model's gradient at the last
  # decoded frame, pulled back through the knob chain at the raw frames.
  encoded = codec.encode(workload.segments[1].frames, resolution=config["resolution"],
                         qp=config["qp"], preset=workload.preset)
  decoded = jnp.asarray(encoded.as_float()[9:10])
  model = workload.model
  reference_value, dnn_grad = jax.value_and_grad(lambda x: proxies.detection(model(x)))(decoded)
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
  with pytest.raises(ValueError, match="decoded, fused"):
    Controller(estimator="magic")
  with pytest.raises(ValueError, match="rungs, paper"):
    core.oneadapt(None, Tradeoff(lam=0.3), preset="magic")
  with pytest.raises(ValueError, match="learning_rate"):
    core.oneadapt(None, Tradeoff(lam=0.3), learnin_rate=0.1)
