"""The street-scene models on real vtest frames: the SSDLite pedestrian detector, ported from its
TensorFlow graph, against OpenCV's DNN module (which reads the same frozen graph with its own
parser); MediaPipe BlazePose against LiteRT."""

import pathlib

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models
from models import _assets, _graphdef, _mp_assets, _ssdlite
from oneadapt_jax import data, proxies, proxy_check

TEXT_GRAPH = pathlib.Path(__file__).parent / "data" / "ssdlite_pedestrian.pbtxt"
FRAMES = (123, 400, 789)  # 2 to 7 pedestrians each
FULL_MAPS = 1911  # anchors of the 19, 10, 5, 3 and 2-cell maps; the 1x1 map's 6 come last


@pytest.fixture(scope="module")
def graph_path():
  return _assets.path(_mp_assets.ASSETS["pedestrian_ssdlite"])


@pytest.fixture(scope="module")
def net(graph_path):
  return _ssdlite.SSDLiteNet.from_graphdef(graph_path)


@pytest.fixture(scope="module")
def opencv(graph_path):
  return cv2.dnn.readNetFromTensorflow(str(graph_path), str(TEXT_GRAPH))


def _vtest_frame(index):
  return data.clip_segments("vtest")[index // 10].frames[index % 10]


def _opencv_outputs(opencv, image):
  """OpenCV's raw head outputs and post-processed detections for one 300x300 RGB image
  (values 0..255; the text graph keeps the pipeline's own scaling to [-1, 1])."""
  opencv.setInput(cv2.dnn.blobFromImage(image.astype(np.float32), 1.0, (300, 300), (0, 0, 0),
                                        swapRB=False))
  names = ["ClassPredictor/concat", "BoxEncodingPredictor/concat", "PriorBox/concat",
           "detection_out"]
  logits, offsets, priors, detections = opencv.forward(names)
  return (logits.reshape(-1, 2), offsets.reshape(-1, 4)[:, [1, 0, 3, 2]],  # OpenCV: tx, ty, tw, th
          priors.reshape(2, -1, 4)[0], detections.reshape(-1, 7))


@pytest.mark.parametrize("index", FRAMES)
def test_port_matches_opencv_dnn_on_vtest(net, opencv, index):
  image = cv2.resize(_vtest_frame(index), (300, 300), interpolation=cv2.INTER_LINEAR)
  logits, offsets, priors, reference = _opencv_outputs(opencv, image)
  ours = jax.jit(net)(jnp.asarray(image[None], jnp.float32) / 127.5 - 1.0)
  our_logits, our_offsets = np.asarray(ours["logits"][0]), np.asarray(ours["boxes"][0])
  np.testing.assert_allclose(our_logits[:FULL_MAPS], logits[:FULL_MAPS], atol=1e-3)
  np.testing.assert_allclose(our_offsets[:FULL_MAPS], offsets[:FULL_MAPS], atol=1e-3)
  # The anchors: OpenCV's PriorBox layers (x0, y0, x1, y1) against the API's generator.
  y, x, h, w = _ssdlite.ssd_anchors().T
  np.testing.assert_allclose(np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], -1), priors,
                             atol=1e-6)
  # After suppression: every detection OpenCV reports above 0.3, the same box and score.
  boxes = _ssdlite.decode_boxes(our_offsets, _ssdlite.ssd_anchors())
  scores = 1.0 / (1.0 + np.exp(-our_logits[:, 1]))
  kept = _ssdlite.nms(boxes, scores)
  kept = kept[scores[kept] > 0.3]
  reference = reference[reference[:, 2] > 0.3]
  assert len(reference) >= 2, "vtest frames picked to have pedestrians"
  assert len(kept) == len(reference)
  np.testing.assert_allclose(scores[kept], reference[:, 2], atol=1e-3)
  ious = models.box_iou(boxes[kept][:, [1, 0, 3, 2]], reference[:, 3:7])
  assert np.all(np.diag(ious) >= 0.99), np.diag(ious)


def test_the_one_cell_map_follows_tensorflows_same_padding(net, opencv):
  """On the last, 1x1 map a 3x3 SAME depthwise convolution sees only its centre tap (TensorFlow
  pads one zero on each side). OpenCV's DNN gives neither that nor any single tap there, so
  these six anchors (scale 0.95: boxes the size of the frame) are checked against NumPy."""
  image = cv2.resize(_vtest_frame(400), (300, 300), interpolation=cv2.INTER_LINEAR)
  x = jnp.asarray(image[None], jnp.float32) / 127.5 - 1.0
  last = np.asarray(jax.jit(lambda x: net.features(x)[-1])(x))[0, 0, 0]  # [128]
  outputs = jax.jit(net)(x)
  for heads, key in ((net.class_heads, "logits"), (net.box_heads, "boxes")):
    head = heads[-1]
    hidden = np.clip(np.asarray(head.depthwise.kernel[...])[1, 1] * last
                     + np.asarray(head.depthwise.bias[...]), 0.0, 6.0)
    expected = hidden @ np.asarray(head.conv.kernel[...])[0, 0] + np.asarray(head.conv.bias[...])
    ours = np.asarray(outputs[key][0, FULL_MAPS:]).ravel()
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_tiled_detector_on_an_odd_frame_matches_opencv_tile_by_tile(opencv):
  """The wrapper's tiling and box decoding against OpenCV run on the same tiles, on a frame of
  odd size."""
  frame = _vtest_frame(400)[:575, :767].astype(np.float32) / 255.0
  detector = models.load("pedestrian_ssdlite")
  ours = jax.jit(detector)(jnp.asarray(frame[None]))
  tiles = detector.tiles(*frame.shape[:2])
  assert tiles.shape == (6, 4)
  for k, (x0, y0, w, h) in enumerate(tiles):
    left, top, width, height = (round(float(v)) for v in (x0, y0, w, h))
    crop = frame[top:top + height, left:left + width]
    tile = np.asarray(_mp_assets.resize(jnp.asarray(crop[None]), 300, 300))[0] * 255.0
    logits, offsets, _, _ = _opencv_outputs(opencv, tile)
    np.testing.assert_allclose(np.asarray(ours["scores"][0, k, :FULL_MAPS]),
                               logits[:FULL_MAPS, 1], atol=2e-3)
    y, x, hh, ww = _ssdlite.ssd_anchors().T
    anchors = np.stack([y, x, hh, ww], -1)
    yxyx = _ssdlite.decode_boxes(offsets, anchors)
    expected = np.stack([x0 + yxyx[:, 1] * w, y0 + yxyx[:, 0] * h,
                         x0 + yxyx[:, 3] * w, y0 + yxyx[:, 2] * h], -1)
    expected /= np.array([767, 575, 767, 575])
    np.testing.assert_allclose(np.asarray(ours["boxes"][0, k, :FULL_MAPS]), expected[:FULL_MAPS],
                               atol=2e-4)
  found = models.postprocess("pedestrian_ssdlite", detector,
                             jax.tree.map(lambda a: np.asarray(a[0]), ours), frame.shape[:2])
  assert 2 <= len(found.boxes) <= 6 and np.all(found.boxes[:, 2] <= 767)


# The task's proxy in `make test`; its alternatives (one program for the two: one compile
# instead of two) in the slow set: the three together took 43 s on 2 cores, the first 6 s alone.
@pytest.mark.parametrize("chosen", [
    pytest.param((proxies.soft_count,), id="soft_count"),
    pytest.param((proxies.gentle_count, proxies.expected_f1), id="alternatives",
                 marks=pytest.mark.slow)])
def test_input_gradients_are_finite_under_vmap_at_an_odd_size(chosen):
  detector = models.load("pedestrian_ssdlite")
  frames = jnp.asarray(np.stack([_vtest_frame(400), _vtest_frame(401)])[:, :301, :403]
                       .astype(np.float32) / 255.0)
  every = jax.jit(jax.vmap(lambda x: [jax.grad(lambda x, p=p: p(detector(x)))(x) for p in chosen]))
  for grads in every(frames):
    assert grads.shape == frames.shape
    assert np.all(np.isfinite(np.asarray(grads))) and float(jnp.abs(grads).max()) > 0


def test_soft_count_keeps_what_numpy_nms_keeps():
  rng = np.random.default_rng(0)
  centres = rng.uniform(0.1, 0.9, (4, 1, 2))
  boxes = np.concatenate([centres - 0.05, centres + 0.05], -1) + rng.normal(0, 0.01, (4, 20, 4))
  boxes = np.concatenate([boxes.reshape(-1, 4), [[0.0, 0.0, 0.9, 0.9]]])  # one too large
  logits = rng.normal(0.0, 3.0, len(boxes)).astype(np.float32)
  boxes = boxes.astype(np.float32)
  outputs = {"scores": jnp.asarray(logits[None, None], jnp.float32),
             "boxes": jnp.asarray(boxes[None, None], jnp.float32)}
  scores = 1 / (1 + np.exp(-logits))
  kept = _ssdlite.nms(boxes, scores, iou_threshold=0.6)[:100]
  kept = kept[((boxes[kept, 2] - boxes[kept, 0]) * (boxes[kept, 3] - boxes[kept, 1])) <= 0.08]
  expected = np.sum(1 / (1 + np.exp(-20 * (scores[kept] - 0.5))))
  assert float(proxies.soft_count(outputs)) == pytest.approx(expected, rel=1e-5)
  # gentle_count: the same detections, those scored under 0.1 left out, a gentler sigmoid
  gentle = kept[scores[kept] >= 0.1]
  assert 0 < len(gentle) < len(kept)
  expected = np.sum(1 / (1 + np.exp(-8 * (scores[gentle] - 0.25))))
  assert float(proxies.gentle_count(outputs)) == pytest.approx(expected, rel=1e-5)
  # its slope where the paper's has none: d/d logit at a candidate scored 0.2
  low = int(gentle[np.argmin(np.abs(scores[gentle] - 0.2))])
  slopes = [float(jax.grad(lambda x, f=f: f({**outputs, "scores": x}))(outputs["scores"])
                  [0, 0, low]) for f in (proxies.soft_count, proxies.gentle_count)]
  assert slopes[1] > 5 * slopes[0] > 0


def test_graphdef_reader_names_a_file_that_is_not_one(tmp_path):
  bad = tmp_path / "not_a_graph.pb"
  bad.write_bytes(b"\xff\xff\xff\xff not protobuf")
  with pytest.raises(ValueError, match="not_a_graph.pb.*not a TensorFlow GraphDef"):
    _graphdef.read_graphdef(bad)


def test_reader_finds_the_pipelines_structure(graph_path):
  nodes = _graphdef.read_graphdef(graph_path)
  ops = [n.op for n in nodes.values()]
  assert ops.count("Conv2D") == 55 and ops.count("DepthwiseConv2dNative") == 33
  assert ops.count("FusedBatchNorm") == 76
  norm = nodes["FeatureExtractor/MobilenetV2/Conv/BatchNorm/FusedBatchNorm"]
  assert norm.attrs["epsilon"] == pytest.approx(1e-3)
  kernel = nodes["FeatureExtractor/MobilenetV2/Conv/weights"].attrs["value"]
  assert kernel.shape == (3, 3, 3, 32) and kernel.dtype == np.float32


# --------------------------------------------------------------------------- BlazePose


def _litert_outputs(name, x):
  from ai_edge_litert.interpreter import Interpreter, OpResolverType

  interpreter = Interpreter(model_path=str(_assets.path(_mp_assets.ASSETS[name])),
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.asarray(x))
  interpreter.invoke()
  return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


@pytest.mark.parametrize("name, size, low", [("pose_detection", 224, -1.0),
                                             ("pose_landmark_full", 256, 0.0)])
def test_blazepose_networks_match_litert_on_vtest(name, size, low):
  """Both networks, sparse (DENSIFY) and float16 weights included, on crops of people in vtest."""
  from models import _tflite

  net = jax.jit(_tflite.TFLiteNet(_tflite.read_graph(_assets.path(_mp_assets.ASSETS[name]))))
  for index, (top, left) in ((400, (100, 540)), (123, (130, 260))):
    crop = _vtest_frame(index)[top:top + 192, left:left + 192].astype(np.float32) / 255.0
    x = jax.image.resize(jnp.asarray(crop[None]), (1, size, size, 3), "linear")
    x = low + (1.0 - low) * x
    ours, reference = net(x), _litert_outputs(name, x)
    for key, value in reference.items():
      if name == "pose_landmark_full" and key == "Identity_2":
        # The person-segmentation logits reach ~1600; every layer before them agrees with
        # LiteRT within 4e-4 of its scale, and the last convolutions carry that into an absolute
        # difference of up to 1.4 on one machine and 2.04 on another (2 pixels of 65536, 1.2e-3
        # of the logits' scale; XLA's CPU code differs by the CPU's instruction set). Nothing
        # here reads them.
        np.testing.assert_allclose(np.asarray(ours[key]), value, rtol=0,
                                   atol=2e-3 * float(np.abs(value).max()))
        continue
      # The landmark model is 96 convolutions deep: its depth (z) and visibility columns differ
      # by a few 1e-3 in float32 sums; the keypoints' x and y, what the metric reads, to 1e-3.
      loose = name == "pose_landmark_full"
      np.testing.assert_allclose(np.asarray(ours[key]), value, atol=5e-3 if loose else 1e-3,
                                 rtol=1e-3 if loose else 1e-5, err_msg=f"{name}: {key}")
    if name == "pose_landmark_full":
      xy = lambda out: np.asarray(out["Identity"]).reshape(39, 5)[:, :2]
      np.testing.assert_allclose(xy(ours), xy(reference), atol=1e-3, rtol=1e-5)  # 256-px crop


def test_densify_matches_the_dense_reading_of_a_csr_tensor():
  from models import _tflite

  graph = _tflite.read_graph(_assets.path(_mp_assets.ASSETS["pose_detection"]))
  # Sparse weights were made dense at load: convolution kernels with zeros where pruned.
  kernels = [graph.constants[op.inputs[1]] for op in graph.ops if op.kind == "CONV_2D"]
  assert all(k.dtype == np.float32 for k in kernels)
  assert any(np.mean(k == 0) > 0.3 for k in kernels)  # the pruned ones


@pytest.mark.slow  # 30 s on 2 cores, compiling both models; their networks match LiteRT in
# `make test` (test_blazepose_networks_match_litert_on_vtest)
def test_blazepose_finds_the_people_of_vtest_and_their_keypoints_fit_them():
  frame = _vtest_frame(400).astype(np.float32) / 255.0
  model = models.load("blazepose")
  outputs = jax.jit(model)(jnp.asarray(frame[None]))
  found = models.postprocess("blazepose", model, jax.tree.map(lambda a: np.asarray(a[0]), outputs),
                             frame.shape[:2])
  pedestrians = models.load("pedestrian_ssdlite")
  boxes = models.postprocess("pedestrian_ssdlite", pedestrians,
                             jax.tree.map(lambda a: np.asarray(a[0]),
                                          jax.jit(pedestrians)(jnp.asarray(frame[None]))),
                             frame.shape[:2]).boxes
  assert len(boxes) >= 2
  # Every pedestrian the SSDLite detector finds has a BlazePose skeleton inside its box.
  for x0, y0, x1, y1 in boxes:
    inside = [np.mean((p[:, 0] >= x0 - 5) & (p[:, 0] <= x1 + 5) & (p[:, 1] >= y0 - 5)
                      & (p[:, 1] <= y1 + 5)) for p in found["landmarks"]]
    assert max(inside) >= 0.8, (x0, y0, x1, y1)


def test_blazepose_gradients_are_finite_under_vmap_at_an_odd_size():
  model = models.load("blazepose")
  frames = jnp.asarray(np.stack([_vtest_frame(400), _vtest_frame(401)])[:, 60:361, 480:767]
                       .astype(np.float32) / 255.0)
  grads = jax.jit(jax.vmap(jax.grad(lambda x: proxies.body_presence(model(x)))))(frames)
  assert grads.shape == frames.shape
  assert np.all(np.isfinite(np.asarray(grads))) and float(jnp.abs(grads).max()) > 0


def test_body_keypoints_metric_on_hand_made_people():
  from oneadapt_jax import metrics

  rng = np.random.default_rng(0)
  person = rng.uniform(0, 100, (33, 2))
  a = {"landmarks": np.stack([person, person + 200]),
       "boxes": np.array([[0, 0, 100, 100], [200, 200, 300, 300]], float)}
  assert metrics.body_keypoints(a, a) == 1.0
  moved = {"landmarks": a["landmarks"][:1] + 20.0, "boxes": a["boxes"][:1]}
  assert metrics.body_keypoints(moved, a) == 0.0  # one matched but every point off; one missed
  half = {"landmarks": a["landmarks"][:1], "boxes": a["boxes"][:1]}
  assert metrics.body_keypoints(half, a) == 0.5
  empty = {"landmarks": np.zeros((0, 33, 2)), "boxes": np.zeros((0, 4))}
  assert metrics.body_keypoints(empty, empty) == 1.0 and metrics.body_keypoints(empty, a) == 0.0


@pytest.mark.slow  # 55 s on 2 cores
def test_pedestrian_proxy_tracks_f1_on_a_vtest_segment(capsys):
  """The default detection proxy on vtest against F1 over a 3 x 3 grid of real x264 encodes of
  one segment (the README's table has every 4th segment on a 5 x 5 grid: 0.95 to 1.00)."""
  result = proxy_check.clip_check("detection", "vtest", every=40, resolutions=(0.33, 0.5, 1.0),
                                  qps=(20, 38, 50))
  assert result["model"] == "pedestrian_ssdlite" and result["segments"] == [0, 40]
  assert min(result["spearman_per_segment"]) >= 0.8, result["spearman_per_segment"]
  proxy_check.print_clip_check(result)
  assert "expected_f1" in capsys.readouterr().out


def test_proxy_check_names_the_segments_a_clip_has():
  for bad in (-1, 79, True):
    with pytest.raises(ValueError, match=r"first_segment must be an integer in \[0, 79\)"):
      proxy_check.clip_check("detection", "vtest", first_segment=bad)
