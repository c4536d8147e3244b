"""The face mesh on the face BlazeFace finds, as MediaPipe's face-mesh graph runs it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import _assets, _facemesh
from models._face_detection import BlazeFace, decode_anchors
from models._mp_assets import ASSETS, flatten, region_to_frame, sample_regions


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
    return region_to_frame(roi, points, self.net.input_size)

  def crop(self, flat: jax.Array, roi: jax.Array) -> jax.Array:
    """Samples each frame's rotated square `roi` bilinearly to `[N, 192, 192, 3]` (zero outside)."""
    n = self.net.input_size
    return jax.vmap(lambda image, r: sample_regions(image, r[None], n)[0])(flat, roi)

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = flatten(frames)
    roi = self.roi(flat)
    raw = self.net(self.crop(flat, roi))
    points = raw["conv2d_21"].reshape(-1, 468, 3)
    xy = self.to_frame(roi, points[..., :2])
    z = points[..., 2:] * roi[:, None, 2:3] / self.net.input_size
    landmarks = jnp.concatenate([xy, z], axis=-1)
    return {"landmarks": landmarks.reshape(lead + (468, 3)),
            "presence": raw["conv2d_31"].reshape(lead),
            "roi": roi.reshape(lead + (4,))}
