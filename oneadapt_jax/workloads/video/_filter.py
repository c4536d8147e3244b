"""Reducto's camera-side difference features (Li et al., SIGCOMM'20), in NumPy.

Each feature compares a frame with a reference frame (the last one sent) on grey levels blurred
a little, as Reducto's differencers do:

- `pixel`: the fraction of pixels whose grey level moved by more than `PIXEL_DELTA`;
- `area`: the largest connected region of such pixels (dilated twice, so that a moving object
  is one region), as a fraction of the frame;
- `edge`: the fraction of pixels that are an edge (Sobel magnitude over `EDGE_LEVEL`) in one
  frame and not the other.

A frame is sent when its feature against the last sent frame exceeds the threshold; frame 0 is
always sent. The `pixel` rule here is Reducto's; the differentiable `knobs.frame_filter` uses the
same feature with a sigmoid for its gradient.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FEATURES = ("pixel", "area", "edge")
PIXEL_DELTA = 21 / 255  # Reducto's pixel threshold on 8-bit grey levels
EDGE_LEVEL = 0.4  # Sobel magnitude (grey levels in [0, 1]) that makes an edge
_SQUARE = np.ones((3, 3), bool)  # OpenCV's default dilation kernel, which Reducto uses


def grey(frames: np.ndarray) -> np.ndarray:
  """`[..., H, W, 3]` uint8 or float in [0, 1] -> blurred luma `float32 [..., H, W]` in [0, 1]."""
  frames = np.asarray(frames)
  scale = 255.0 if frames.dtype == np.uint8 else 1.0
  luma = (frames[..., :3].astype(np.float32) / scale) @ np.float32([0.299, 0.587, 0.114])
  sigma = [0.0] * (luma.ndim - 2) + [1.0, 1.0]
  return ndimage.gaussian_filter(luma, sigma).astype(np.float32)


def _edges(g: np.ndarray) -> np.ndarray:
  return np.hypot(ndimage.sobel(g, axis=-1), ndimage.sobel(g, axis=-2)) > EDGE_LEVEL


def difference(feature: str, frame: np.ndarray, reference: np.ndarray) -> float:
  """`feature` of one grey frame `[H, W]` against a grey reference frame."""
  if feature == "pixel":
    return float(np.mean(np.abs(frame - reference) > PIXEL_DELTA))
  if feature == "area":
    changed = ndimage.binary_dilation(np.abs(frame - reference) > PIXEL_DELTA, _SQUARE,
                                      iterations=2)
    labels, count = ndimage.label(changed)
    if count == 0:
      return 0.0
    return float(np.bincount(labels.ravel())[1:].max() / labels.size)
  if feature == "edge":
    return float(np.mean(_edges(frame) != _edges(reference)))
  raise ValueError(f"unknown difference feature {feature!r}; available: {', '.join(FEATURES)}")


def consecutive(feature: str, frames: np.ndarray) -> np.ndarray:
  """`feature` of every frame against the one before it: `float [T - 1]` (Reducto's per-segment
  histogram is built from these)."""
  g = grey(frames)
  return np.array([difference(feature, g[t], g[t - 1]) for t in range(1, len(g))], np.float32)


def sent_frames(feature: str, frames: np.ndarray, threshold: float) -> np.ndarray:
  """`bool [T]`: the frames a camera sends, each against the last one sent."""
  if feature not in FEATURES:
    raise ValueError(f"unknown difference feature {feature!r}; available: {', '.join(FEATURES)}")
  g = grey(frames)
  sent = np.zeros(len(g), bool)
  sent[0], last = True, g[0]
  for t in range(1, len(g)):
    if difference(feature, g[t], last) > threshold:
      sent[t], last = True, g[t]
  return sent
