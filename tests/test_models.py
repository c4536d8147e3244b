"""The ported MediaPipe models against the LiteRT interpreter, on real frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from flax import nnx
from skimage import data as skdata
from skimage import transform

import models
from models import _assets, _blazeface, _facemesh, _mediapipe, _selfie, _tflite, layers
from oneadapt_jax import data, metrics, proxies, proxy_check

NETWORKS = {  # asset, input range
    "face_detection_short_range": (-1.0, 1.0),
    "face_detection_back": (-1.0, 1.0),
    "selfie_segmentation": (0.0, 1.0),
    "face_landmark": (0.0, 1.0),
}


def _real_frames():
  """The astronaut and one frame of each bundled clip the models are meant for."""
  frames = [skdata.astronaut().astype(np.float32) / 255.0]
  for clip in ("carphone", "bikes"):
    frames.append(data.clip_segments(clip)[1].as_float()[4])
  return frames


def _litert(name):
  """LiteRT's interpreter for one of the MediaPipe networks."""
  # LiteRT's reference kernels where it can (XNNPACK sums in another order); MediaPipe's custom
  # transposed convolution is only registered with the default resolver.
  resolver = (OpResolverType.AUTO if name == "selfie_segmentation"
              else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interpreter = Interpreter(model_path=str(_assets.path(_mediapipe.ASSETS[name])),
                            experimental_op_resolver_type=resolver)
  interpreter.allocate_tensors()
  return interpreter


def _check_against_litert(name, run, size):
  interpreter = _litert(name)
  low, high = NETWORKS[name]
  for frame in _real_frames():
    x = transform.resize(frame, size, anti_aliasing=True).astype(np.float32)[None]
    x = low + (high - low) * x
    ours = run(jnp.asarray(x))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    for detail in interpreter.get_output_details():
      reference = interpreter.get_tensor(detail["index"])
      # 1e-3 absolute, plus float32's share on the detectors' logits (up to ~300 in size).
      np.testing.assert_allclose(np.asarray(ours[detail["name"]]), reference, atol=1e-3,
                                 rtol=1e-5, err_msg=f"{name}: {detail['name']}")


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_jitted_port_matches_litert(name):
  graph = _tflite.read_graph(_assets.path(_mediapipe.ASSETS[name]))
  net = _tflite.TFLiteNet(graph)
  _check_against_litert(name, jax.jit(lambda x: net(x)), graph.shapes[graph.inputs[0]][1:3])


HANDWRITTEN = {  # asset -> (builder, an output to differentiate)
    "face_detection_back": (
        lambda path: _blazeface.BlazeFaceNet.from_tflite(path, "back"), "classificators"),
    "face_detection_short_range": (
        lambda path: _blazeface.BlazeFaceNet.from_tflite(path, "short_range"), "classificators"),
    "face_landmark": (_facemesh.FaceMeshNet.from_tflite, "conv2d_31"),
    "selfie_segmentation": (_selfie.SelfieNet.from_tflite, "activation_10"),
}


@pytest.mark.parametrize("name", sorted(HANDWRITTEN))
def test_handwritten_architecture_matches_litert(name):
  """The readable NNX architectures (models/_blazeface.py, _facemesh.py, _selfie.py) with
  MediaPipe's weights, against LiteRT directly, and differentiable in the input under vmap."""
  build, output = HANDWRITTEN[name]
  net = build(_assets.path(_mediapipe.ASSETS[name]))
  size = (net.input_size, net.input_size)
  _check_against_litert(name, jax.jit(lambda x: net(x)), size)
  x = jnp.full((2, 1) + size + (3,), 0.5)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jax.vmap(net)(x)[output])))(x)  # one compile
  assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grad).max()) > 0


def test_handwritten_architectures_refuse_another_graph():
  with pytest.raises(ValueError, match="not a BlazeFace"):
    _blazeface.BlazeFaceNet.from_tflite(_assets.path(_mediapipe.ASSETS["face_landmark"]))
  with pytest.raises(ValueError, match="not MediaPipe's face mesh"):
    _facemesh.FaceMeshNet.from_tflite(_assets.path(_mediapipe.ASSETS["face_detection_back"]))
  with pytest.raises(ValueError, match="not MediaPipe's selfie segmentation"):
    _selfie.SelfieNet.from_tflite(_assets.path(_mediapipe.ASSETS["face_landmark"]))


def test_face_in_carphone_is_found_in_every_frame():
  model = models.load("blazeface")
  run = jax.jit(lambda x: model(x))
  for segment in data.clip_segments("carphone"):
    outputs = run(jnp.asarray(segment.as_float()))
    for i in range(len(segment.frames)):
      found = models.postprocess("blazeface", model, jax.tree.map(lambda a: a[i], outputs),
                                 segment.size)
      assert len(found.scores) >= 1 and found.scores.max() > 0.6, (segment.index, i)
      x0, y0, x1, y1 = found.boxes[0]
      assert 0 <= x0 < x1 <= 176 and 0 <= y0 < y1 <= 144  # inside the frame


def _crop_to_frame(roi, xy):
  """Crop pixels (x, y) of a 192x192 region (centre x, centre y, side, angle) -> frame pixels."""
  cx, cy, side, angle = roi
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  return np.array([cx, cy]) + (np.asarray(xy) / 192.0 - 0.5) * side @ rotation.T


def test_face_mesh_runs_on_the_detected_face_like_mediapipe():
  """BlazeFace's best face -> square, eye-levelled region x 1.5 -> 192x192 crop -> mesh -> frame
  pixels, against the same steps done independently: NumPy's decoder, scikit-image's warp and
  the LiteRT interpreter. The frames include the astronaut and an odd-sized carphone frame."""
  model = models.load("face_landmark")
  carphone = data.clip_segments("carphone")[1].as_float()
  astronaut = transform.resize(skdata.astronaut() / 255.0, (301, 257)).astype(np.float32)
  mesh = _litert("face_landmark")
  run, detect = jax.jit(lambda x: model(x)), jax.jit(lambda x: model.detector(x))
  crop_of = jax.jit(lambda x, roi: model.crop(x, roi))  # op by op, each primitive compiles
  for frame in (carphone[0], carphone[6, :143, 1:], astronaut):
    ours = run(jnp.asarray(frame[None]))
    cx, cy, side, angle = np.asarray(ours["roi"][0], np.float64)
    # The region follows the detector's top face, decoded in NumPy.
    raw = jax.tree.map(lambda a: a[0], detect(jnp.asarray(frame[None])))
    face = models.postprocess("blazeface_short", model.detector, raw, frame.shape[:2])
    x0, y0, x1, y1 = face.boxes[0]
    np.testing.assert_allclose([cx, cy], [(x0 + x1) / 2, (y0 + y1) / 2], atol=0.03 * side)
    assert side == pytest.approx(1.5 * max(x1 - x0, y1 - y0), rel=0.05)
    (rx, ry), (lx, ly) = face.keypoints[0, :2]
    assert angle == pytest.approx(np.arctan2(ly - ry, lx - rx), abs=0.05)
    # The crop, by scikit-image (pixel centres at integers), and LiteRT's mesh on it.
    roi = (cx, cy, side, angle)
    crop = transform.warp(frame, lambda xy, roi=roi: _crop_to_frame(roi, xy + 0.5) - 0.5,
                          output_shape=(192, 192), order=1, mode="constant",
                          cval=0.0).astype(np.float32)
    np.testing.assert_allclose(np.asarray(crop_of(jnp.asarray(frame[None]), ours["roi"]))[0],
                               crop, atol=1e-5)
    mesh.set_tensor(mesh.get_input_details()[0]["index"], crop[None])
    mesh.invoke()
    outputs = {d["name"]: mesh.get_tensor(d["index"]) for d in mesh.get_output_details()}
    points = outputs["conv2d_21"].reshape(468, 3)
    np.testing.assert_allclose(np.asarray(ours["landmarks"][0, :, :2]),
                               _crop_to_frame(roi, points[:, :2]), atol=1e-2)
    np.testing.assert_allclose(float(ours["presence"][0]), outputs["conv2d_31"].item(), atol=1e-3)
    assert float(jax.nn.sigmoid(ours["presence"][0])) > 0.9  # a face the mesh recognises


def test_wide_frames_are_tiled_not_squashed():
  model = models.load("blazeface")
  tiles = model.tiles(272, 640)
  assert len(tiles) == 3 and np.all(tiles[:, 2] == 272) and tiles[-1, 0] + 272 == 640
  outputs = model(jnp.zeros((2, 272, 640, 3)))
  assert outputs["scores"].shape == (2, 3, 896)
  assert len(model.tiles(144, 176)) == 1


@pytest.mark.parametrize("name, proxy", [("blazeface", proxies.detection),
                                         ("selfie_segmentation", proxies.segmentation),
                                         ("face_landmark", proxies.keypoints)])
def test_input_gradients_are_finite_and_vmap_matches(name, proxy):
  model = models.load(name)
  frames = jnp.asarray(data.clip_segments("carphone")[0].as_float()[:2])
  grad = jax.jit(jax.grad(lambda x: proxy(model(x))))(frames)
  assert grad.shape == frames.shape and bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grad).max()) > 0
  # Jitted both ways: op by op, the model's hundreds of primitives each compile alone.
  batched = jax.jit(jax.vmap(lambda x: proxy(model(x))))(frames[:, None])
  one = jax.jit(lambda x: proxy(model(x)))
  single = jnp.stack([one(frames[i:i + 1]) for i in range(2)])
  np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)


def test_segmentation_mask_and_landmarks_have_frame_geometry():
  frames = jnp.asarray(data.clip_segments("carphone")[0].as_float()[:1])
  mask = jax.jit(models.load("selfie_segmentation"))(frames)["mask"]
  assert mask.shape == (1, 144, 176) and float(mask.min()) >= 0 and float(mask.max()) <= 1
  assert 0.05 < float((mask > 0.5).mean()) < 0.95  # the man in the car fills part of the frame
  mesh = jax.jit(models.load("face_landmark"))(frames)
  assert mesh["landmarks"].shape == (1, 468, 3)
  xy = np.asarray(mesh["landmarks"][0, :, :2])
  assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= 176 and xy[:, 1].max() <= 144


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
  monkeypatch.setenv(_assets.CACHE_ENV, str(tmp_path))
  asset = _mediapipe.ASSETS["face_detection_back"]
  (tmp_path / "files").mkdir()
  (tmp_path / "files" / asset.name).write_bytes(b"\x00" * 100)
  with pytest.raises(models.AssetIntegrityError, match="face_detection_back.tflite"):
    models.load("blazeface")
  with pytest.raises(ValueError, match="unknown model"):
    models.load("yolo")


def test_metrics_on_hand_made_cases():
  box = np.array([[10, 10, 50, 50]], float)
  assert metrics.detection(box, box) == 1.0
  assert metrics.detection(box + 30, box) == 0.0  # IoU 0.14 < 0.5
  assert metrics.detection(np.concatenate([box, box + 100]), box) == pytest.approx(2 / 3)
  assert metrics.detection(np.zeros((0, 4)), np.zeros((0, 4))) == 1.0
  mask = np.zeros((4, 4), bool)
  mask[:2] = True
  assert metrics.segmentation(mask, mask) == 1.0
  assert metrics.segmentation(mask, np.ones((4, 4), bool)) == 0.5
  points = np.array([[0.0, 0.0], [100.0, 100.0]])
  assert metrics.keypoints(points + 3.0, points) == 1.0  # |(3, 3)| = 4.2 <= 5% of 100
  assert metrics.keypoints(points + 10.0, points) == 0.0


TASK_PROXIES = [("detection", "expected_f1"), ("segmentation", None), ("keypoints", None)]


def _spearman(task, proxy, segment):
  result = proxy_check.proxy_metric_correlation(task, "carphone", segment)
  assert min(result["metric"]) < 0.5 < max(result["metric"])  # the grid spans good and bad
  return result["alternatives"][proxy] if proxy else result["spearman"]


@pytest.mark.parametrize("task, proxy", TASK_PROXIES)
def test_proxy_tracks_its_metric_on_carphone(task, proxy):
  """Each task's proxy against its real metric vs the best-quality output, over real x264
  encodes at 5 resolutions x 5 QPs of carphone's first segment: Spearman >= 0.8."""
  assert _spearman(task, proxy, 0) >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("task, proxy", TASK_PROXIES)
def test_proxy_tracks_its_metric_on_every_carphone_segment(task, proxy):
  """The same on each of carphone's 4 segments: >= 0.8 on average and >= 0.7 on every one
  (measured: `oneadapt_jax/proxy_check.py`)."""
  values = [_spearman(task, proxy, i) for i in range(len(data.clip_segments("carphone")))]
  assert np.mean(values) >= 0.8 and min(values) >= 0.7, values


def test_expected_f1_on_hand_made_scores():
  """One sure face and nothing else: ~1; the same face with a doubtful second anchor: lower;
  a sure empty frame: ~1; a frame of doubtful anchors: low (compared with the formula in NumPy)."""
  def logits(*probabilities):
    p = np.full(896, 1e-6)
    p[:len(probabilities)] = probabilities
    return {"scores": jnp.asarray(np.log(p / (1 - p)).reshape(1, 1, 896), jnp.float32)}

  def reference(scores):
    p = 1 / (1 + np.exp(-np.asarray(scores["scores"], np.float64).ravel()))
    d = p > 0.5
    return (2 * np.sum(p * d) + 1) / (np.sum(d) + np.sum(p) + 1)

  cases = [logits(0.999), logits(0.999, 0.5), logits(), logits(*[0.4] * 5)]
  values = [float(proxies.expected_f1(c)) for c in cases]
  np.testing.assert_allclose(values, [reference(c) for c in cases], rtol=1e-4)
  assert values[0] > 0.99 and values[1] < values[0] and values[2] > 0.99 and values[3] < 0.4
  grad = jax.grad(lambda s: proxies.expected_f1({"scores": s}))(cases[1]["scores"])
  assert bool(jnp.all(jnp.isfinite(grad))) and float(grad[0, 0, 0]) > 0 > float(grad[0, 0, 1])


def test_expected_iou_on_hand_made_masks():
  """A sure mask: 1; blurred edges: lower; the formula against NumPy; an empty mask: 0."""
  sure = np.zeros((2, 9, 11), np.float32)
  sure[:, 2:6, 3:8] = 1.0
  blurred = np.clip(sure * 0.8 + 0.1 + 0.05 * np.arange(11, dtype=np.float32), 0, 1)
  inside = blurred > 0.5
  reference = np.mean([(p * m).sum() / (m.sum() + (p * ~m).sum()) for p, m in zip(blurred, inside)])
  assert float(proxies.segmentation({"mask": jnp.asarray(sure)})) == pytest.approx(1.0)
  assert float(proxies.segmentation({"mask": jnp.asarray(blurred)})) == pytest.approx(reference,
                                                                                      rel=1e-5)
  assert reference < 0.9
  assert float(proxies.segmentation({"mask": jnp.zeros((9, 11))})) == 0.0
  grad = jax.grad(lambda m: proxies.segmentation({"mask": m}))(jnp.asarray(blurred))
  assert bool(jnp.all(jnp.isfinite(grad)))
  assert float(grad[0, 3, 4]) > 0 > float(grad[0, 0, 0])  # raise the inside, lower the outside


@pytest.mark.parametrize("strides, dilation, padding, size",
                         [((1, 1), (1, 1), "SAME", (9, 11)), ((2, 2), (1, 1), "SAME", (9, 12)),
                          ((2, 1), (1, 1), "VALID", (10, 7)), ((1, 1), (2, 2), "SAME", (8, 9)),
                          ((2, 2), (1, 1), "SAME", (7, 13)), ((2, 2), (2, 1), "VALID", (11, 12))])
def test_depthwise_as_shifted_sums_equals_grouped_convolution(strides, dilation, padding, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 5))
  kernel = jax.random.normal(jax.random.key(1), (3, 5, 5))  # TFLite's [kH, kW, C]
  reference = jax.lax.conv_general_dilated(
      x, kernel[:, :, None, :], strides, padding, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=5)
  ours = layers.depthwise_conv(x, kernel, strides, padding, dilation)
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
  grad = jax.grad(lambda k: jnp.sum(layers.depthwise_conv(x, k, strides, padding, dilation) ** 2))
  grad_reference = jax.grad(lambda k: jnp.sum(jax.lax.conv_general_dilated(
      x, k[:, :, None, :], strides, padding, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=5) ** 2))
  np.testing.assert_allclose(grad(kernel), grad_reference(kernel), rtol=1e-4, atol=1e-4)
  # The hand-written backward pass (input and kernel) against autodiff of the grouped
  # convolution, under a random cotangent, and as jit and vmap see it.
  cotangent = jax.random.normal(jax.random.key(2), reference.shape)
  _, pullback = jax.vjp(lambda x, k: layers.depthwise_conv(x, k, strides, padding, dilation),
                        x, kernel)
  _, pullback_reference = jax.vjp(lambda x, k: jax.lax.conv_general_dilated(
      x, k[:, :, None, :], strides, padding, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=5), x, kernel)
  for ours, theirs in zip(pullback(cotangent), pullback_reference(cotangent), strict=True):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  batched = jax.jit(jax.vmap(jax.grad(
      lambda x, c: jnp.sum(layers.depthwise_conv(x, kernel, strides, padding, dilation) * c))))
  np.testing.assert_allclose(batched(x[:, None], cotangent[:, None])[:, 0],
                             pullback_reference(cotangent)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window, strides, padding, size",
                         [((5, 5), (2, 2), "SAME", (16, 16)), ((5, 5), (2, 2), "SAME", (9, 12)),
                          ((5, 5), (2, 2), "VALID", (11, 8)), ((5, 4), (3, 2), "SAME", (10, 7)),
                          ((2, 2), (2, 2), "VALID", (9, 9)), ((7, 7), (2, 2), ((1, 2), (3, 0)), (8, 11)),
                          ((3, 3), (2, 2), "SAME", (9, 12)), ((3, 3), (1, 1), "SAME", (6, 5))])
def test_strided_conv_with_space_to_depth_backward_equals_lax_conv(window, strides, padding, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 3))
  kernel = jax.random.normal(jax.random.key(1), (*window, 3, 4))

  def reference(x, k):
    return jax.lax.conv_general_dilated(x, k, strides, padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  expected = reference(x, kernel)
  np.testing.assert_allclose(layers.conv(x, kernel, strides, padding), expected,
                             rtol=1e-5, atol=1e-5)
  # Input and kernel gradients against autodiff of XLA's own strided convolution.
  cotangent = jax.random.normal(jax.random.key(2), expected.shape)
  _, pullback = jax.vjp(lambda x, k: layers.conv(x, k, strides, padding), x, kernel)
  _, pullback_reference = jax.vjp(reference, x, kernel)
  for ours, theirs in zip(pullback(cotangent), pullback_reference(cotangent), strict=True):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  batched = jax.jit(jax.vmap(jax.grad(
      lambda x, c: jnp.sum(layers.conv(x, kernel, strides, padding) * c))))
  np.testing.assert_allclose(batched(x[:, None], cotangent[:, None])[:, 0],
                             pullback_reference(cotangent)[0], rtol=1e-4, atol=1e-4)
  # TFLite's OHWI kernel, as the importer passes it: the same output and input gradient.
  out_ohwi, pullback_ohwi = jax.vjp(lambda x: layers.conv(
      x, jnp.transpose(kernel, (3, 0, 1, 2)), strides, padding, kernel_layout="OHWI"), x)
  np.testing.assert_allclose(out_ohwi, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(pullback_ohwi(cotangent)[0], pullback_reference(cotangent)[0],
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window, strides, padding, size",
                         [((2, 2), (2, 2), "SAME", (9, 12)), ((2, 2), (2, 2), "VALID", (9, 11)),
                          ((3, 3), (3, 3), "SAME", (10, 8)), ((2, 3), (2, 3), "VALID", (8, 9)),
                          ((3, 3), (2, 2), "SAME", (9, 10))])
def test_max_pool_equals_reduce_window(window, strides, padding, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 3))  # no ties: one maximum per window

  def reference(x):
    pads = jax.lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *strides, 1),
                                 ((0, 0), *pads, (0, 0)))

  expected = reference(x)
  np.testing.assert_array_equal(layers.max_pool(x, window, strides, padding), expected)
  cotangent = jax.random.normal(jax.random.key(2), expected.shape)
  ours = jax.vjp(lambda x: layers.max_pool(x, window, strides, padding), x)[1](cotangent)[0]
  np.testing.assert_array_equal(ours, jax.vjp(reference, x)[1](cotangent)[0])
  assert bool(jnp.all(jnp.isfinite(ours)))


def test_max_pool_splits_the_gradient_among_tied_maxima():
  x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 1, 0].set(-1.0)  # three tied maxima at 0
  grad = jax.grad(lambda x: jnp.sum(layers.max_pool(x, (2, 2), (2, 2))))(x)
  np.testing.assert_allclose(grad[0, ..., 0], [[1 / 3, 1 / 3], [1 / 3, 0.0]], rtol=1e-6)


@pytest.mark.parametrize("options", [{"strides": (2, 2)}, {"strides": 2, "use_bias": False},
                                     {"strides": (2, 1), "padding": "VALID"}, {"strides": 1}])
def test_conv_module_equals_the_nnx_conv_it_reads(options):
  module = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), **{"padding": "SAME", **options})
  x = jax.random.normal(jax.random.key(1), (2, 9, 11, 3))
  np.testing.assert_allclose(layers.conv_module(module, x), module(x), rtol=1e-5, atol=1e-5)


def test_strided_conv_backward_has_no_dilated_input_where_it_pays():
  x, kernel = jnp.ones((1, 16, 16, 3)), jnp.ones((5, 5, 3, 4))

  def backward(window):  # the gradient's StableHLO: its convolutions' `lhs_dilate`
    return jax.jit(jax.grad(lambda x: jnp.sum(layers.conv(
        x, kernel[:window, :window], (2, 2), "SAME")))).lower(x).as_text()

  assert "convolution" in backward(5) and "lhs_dilate = [2, 2]" not in backward(5)  # 6x6: 1.44x
  assert "lhs_dilate = [2, 2]" in backward(3)  # 4x4 phases would be 1.78x: XLA's own backward
