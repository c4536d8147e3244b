"""AccGrad: fused, split (camera/server) and the paper's re-encoding estimator."""

import jax.numpy as jnp
import numpy as np
import pytest

import knobs
import models
from oneadapt_jax import accgrad, codec, data, proxies


@pytest.fixture(scope="module")
def detector():
  return models.load("blazeface")


@pytest.fixture(scope="module")
def segment():
  return data.clip_segments("carphone")[1]


def test_fused_matches_central_differences_through_a_smooth_knob(detector, segment):
  knob = knobs.resolution()
  frames = segment.as_float()[:4]
  for level in (0.3, 0.62, 0.9):  # between rungs, where the knob is smooth
    value, grad = accgrad.acc_grad(knob, detector, proxies.detection, jnp.float32(level), frames)
    # The soft count is sharply curved: central differences converge to the gradient as the
    # step shrinks (at 0.3: 6.1, 7.3, 7.8, 8.5, 9.6 for steps 0.02 ... 0.001, gradient 10.3).
    eps = 0.001

    def at(s):
      return float(accgrad.acc_grad(knob, detector, proxies.detection, jnp.float32(s), frames)[0])

    central = (at(level + eps) - at(level - eps)) / (2 * eps)
    assert float(grad) == pytest.approx(central, rel=0.15, abs=0.5), (level, float(grad), central)
    assert np.isfinite(float(value))


def test_split_camera_server_equals_fused(detector, segment):
  """Server: DNNGrad on the frames it receives; camera: pull it back through the knob chain."""
  knob = knobs.chain(resolution=knobs.resolution(), qp=knobs.quantization())
  frames = segment.as_float()[:3]
  setting = {"resolution": jnp.float32(0.6), "qp": jnp.float32(0.45)}
  value, fused = accgrad.acc_grad(knob, detector, proxies.detection, setting, frames)
  sent = knob.apply(setting, jnp.asarray(frames))
  server_value, dnn = accgrad.dnn_grad(detector, proxies.detection, sent)
  camera = accgrad.knob_vjp(knob, setting, frames, dnn)
  assert float(server_value) == pytest.approx(float(value), rel=1e-5)
  for name in setting:
    assert float(camera[name]) == pytest.approx(float(fused[name]), rel=1e-3, abs=1e-3)


def test_fused_acc_grad_compiles_once_across_segments_and_settings(detector):
  knob = knobs.chain(resolution=knobs.resolution(), qp=knobs.quantization())
  segments = data.clip_segments("carphone")[:3]
  accgrad._COMPILED.clear()
  for i, seg in enumerate(segments):
    setting = {"resolution": jnp.float32(0.4 + 0.2 * i), "qp": jnp.float32(0.9 - 0.2 * i)}
    accgrad.acc_grad(knob, detector, proxies.detection, setting, seg.as_float())
  (_, compiled), = accgrad._COMPILED.values()
  assert compiled._cache_size() == 1


def test_reencode_estimator_is_the_paper_finite_difference(detector, segment):
  res, qp = knobs.resolution(), knobs.quantization()
  kwargs = {"resolution_values": res.values, "qp_values": qp.values, "preset": "ultrafast"}
  codec._CACHE.clear()
  _, estimates, encodes = accgrad.reencode_acc_grad(
      detector, proxies.detection, segment.frames, resolution=0.5, qp=0.4, **kwargs)
  # qp = 0.4 is on a rung (6 of 15): its upper neighbour is the current encode, already cached.
  assert encodes == 3 and set(estimates) == {"resolution", "qp"}
  assert all(np.isfinite(v) for v in estimates.values())
  # Recompute the resolution estimate by hand: <DNNGrad at the current encode, X_hi - X_lo> / step.
  base = codec.encode(segment.frames, resolution=float(np.interp(0.5, np.linspace(0, 1, 6),
                                                                 res.values)),
                      qp=float(np.interp(0.4, np.linspace(0, 1, 16), qp.values)), preset="ultrafast")
  _, dnn = accgrad.dnn_grad(detector, proxies.detection, base.as_float())
  low_res, high_res = float(res.values[2]), float(res.values[3])  # setting 0.5 sits between 0.4, 0.6
  qp_now = float(np.interp(0.4, np.linspace(0, 1, 16), qp.values))
  low = codec.encode(segment.frames, resolution=low_res, qp=qp_now, preset="ultrafast")
  high = codec.encode(segment.frames, resolution=high_res, qp=qp_now, preset="ultrafast")
  by_hand = float(np.sum(np.asarray(dnn, np.float64) * (high.as_float().astype(np.float64)
                                                        - low.as_float())) / 0.2)
  assert estimates["resolution"] == pytest.approx(by_hand, rel=1e-4)
  again = accgrad.reencode_acc_grad(detector, proxies.detection, segment.frames, resolution=0.5,
                                    qp=0.4, **kwargs)
  assert again[2] == 0  # every encode it needs is cached now
