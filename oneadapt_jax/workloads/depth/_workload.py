"""Depth video: per-pixel ground segmentation of a range camera flying over the autzen survey.

The stream (`oneadapt_jax.depth.stream`): 400 frames of 64x48 16-bit millimetre depth at 10 fps,
two passes over the survey's held-out east, one second a segment. Knobs, in the sender's order:
`resolution` -> `frame_rate` -> `depth_quantization`; the chain's cost is the stream's FFV1 bytes,
a product of the three (`knobs.depth_stream_bytes`). The real sender (`depth.send`): frames kept by
the frame rate, scaled down, quantized to the bits and coded with FFV1 (lossless, so the codec
adds no error of its own: what a depth stream loses is the resolution, the frames and the
bits); bytes: the FFV1 stream's size. The server (`GroundSegmenter`) runs `models.DepthSeg` on
every frame it receives (held frames reuse the result) and reports each pixel's class
probabilities, zero where the frame has no return. Proxy: the mean probability of each pixel's
class over the pixels with a return (`proxy`); metric: mIoU (ground, not ground) over the
pixels with a return in the best-quality frames, against the segmentation of the best-quality
frames (`metric`), and `truth_metric` against the renderer's true classes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
import models
from models import trained
from oneadapt_jax import depth, metrics
from oneadapt_jax.core import Config, SentWorkload

FRAMES_PER_SEGMENT = depth.FPS  # one second


def knob_chain() -> knobs.Knob:
  """resolution -> frame_rate -> depth_quantization; the cost is the stream's FFV1 bytes
  (`knobs.depth_stream_bytes`)."""
  members = {"resolution": knobs.resolution(), "frame_rate": knobs.frame_rate(source_fps=depth.FPS),
             "depth_quantization": knobs.depth_quantization()}
  chain = knobs.chain(**{name: knobs.scale_cost(knob, 0.0, unit="bytes")
                         for name, knob in members.items()})
  return chain._replace(cost=jax.jit(knobs.depth_stream_bytes(*members.values())), unit="bytes")


def send(frames: np.ndarray, config: Config) -> tuple[np.ndarray, int, int]:
  """`(what the server decodes, FFV1 bytes, frames sent)` of one segment."""
  sent = depth.send(frames, config)
  return sent.frames, sent.num_bytes, int(sent.sent.sum())


class GroundSegmenter(nnx.Module):
  """The depth server: `DepthSeg` on each frame, class probabilities where there is a return."""

  def __init__(self, net: models.DepthSeg):
    self.net = net

  def __call__(self, frames: jax.Array) -> jax.Array:
    probabilities = jax.nn.softmax(self.net(frames), axis=-1)
    return probabilities * (frames > 0).astype(frames.dtype)


def load_model() -> GroundSegmenter:
  """The trained `DepthSeg` behind `GroundSegmenter`, from the verified cache (`make assets`)."""
  return GroundSegmenter(trained.restore("depthseg", models.DepthSeg(rngs=nnx.Rngs(0))))


def proxy(probabilities: jax.Array) -> jax.Array:
  """The mean probability of each pixel's class, over the pixels with a return."""
  return jnp.sum(jnp.max(probabilities, axis=-1)) / (jnp.sum(probabilities) + 1e-6)


def metric(probabilities: np.ndarray, reference: np.ndarray) -> float:
  """mIoU (not ground, ground) over the pixels with a return in the reference (a pixel that lost
  its return counts as not ground)."""
  valid = reference.sum(-1) > 0.5
  return metrics.miou(np.argmax(probabilities, -1)[valid], np.argmax(reference, -1)[valid], 2)


def truth_metric(probabilities: np.ndarray, classes: np.ndarray) -> float:
  """mIoU against the renderer's classes (`uint8`, `depth.NO_RETURN` left out)."""
  valid = classes != depth.NO_RETURN
  return metrics.miou(np.argmax(probabilities, -1)[valid], classes[valid], 2)


@dataclasses.dataclass(eq=False)
class DepthWorkload(SentWorkload):
  """Ground segmentation on depth video, sent as FFV1."""

  kind = "depth"
  task = "ground segmentation"
  frames_per_segment = FRAMES_PER_SEGMENT
  classes: list = dataclasses.field(default_factory=list, repr=False)

  def send(self, index: int, config: Config):
    return send(self.segments[index], config)[:2]

  def send_counted(self, index: int, config: Config):
    """The server runs the model on the frames sent; a held frame repeats its result."""
    return send(self.segments[index], config)


def segments(max_segments: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """The stream cut into one-second segments: `(frames float32 [10, 48, 64, 1] in [0, 1],
  classes uint8 [10, 48, 64])` each."""
  depths, classes = depth.stream()
  count = len(depths) // FRAMES_PER_SEGMENT
  cut = [slice(i * FRAMES_PER_SEGMENT, (i + 1) * FRAMES_PER_SEGMENT) for i in range(count)]
  frames = [depths[s, ..., None].astype(np.float32) / 65535 for s in cut][:max_segments]
  return frames, [classes[s] for s in cut][:max_segments]


def build(*, max_segments: int | None = None) -> DepthWorkload:
  """The depth workload: the rendered flight over the held-out east (`depth.stream`)."""
  frames, classes = segments(max_segments)
  return DepthWorkload("autzen depth flight (64x48, 10 fps)", frames, knob_chain(), load_model(),
                       proxy, metric, classes=classes)
