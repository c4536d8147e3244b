"""What every adaptation method is measured on: a task on a clip, real encodes, real accuracy.

A `Workload` holds the model, the segments of a clip and the model's outputs on the raw frames
(the reference, as in the paper: accuracy is agreement with the same DNN on the best-quality
input). `Workload.evaluate(i, config)` encodes segment `i` with x264 at a discrete `Config`, runs
the model on what was decoded and returns the real accuracy, bytes and frames sent; answers are
memoised, because the baselines, the oracle and the summaries ask for the same configurations
and each answer costs an inference pass.

A `Tradeoff` states what a method optimises: a fixed `lam` (utility
`accuracy - lam * bytes / best_bytes`, the paper's normalisation by the segment's size at the
best-quality configuration), or a `budget` in bytes per second (the most accurate configuration
that fits).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import knobs
import models
from oneadapt_jax import codec, data, metrics, proxy_check

SOURCE_FPS = 10.0


class Config(NamedTuple):
  """One discrete configuration of the camera.

  Attributes:
    resolution: scale factor of each side.
    qp: x264 QP.
    fps: frames per second sent (the others hold the last sent frame).
    threshold: Reducto's frame-filter threshold on the changed-pixel fraction (`None`: off).
  """

  resolution: float = 1.0
  qp: float = 20.0
  fps: float = SOURCE_FPS
  threshold: float | None = None


class Outcome(NamedTuple):
  accuracy: float
  bytes: int
  frames_sent: int


@dataclasses.dataclass
class Record:
  """One method's decision on one segment and everything it cost."""

  method: str
  segment: int
  resolution: float
  qp: float
  fps: float
  threshold: float | None
  accuracy: float
  bytes: int
  dnn_frames: int  # forward passes on frames that were sent
  backward_passes: int = 0
  profiling_frames: int = 0  # forward passes spent on configurations not sent
  camera_encodes: int = 1
  lam: float | None = None  # the trade-off in force (dual ascent moves it)

  @classmethod
  def of(cls, method: str, segment: int, config: Config, outcome: Outcome, **costs) -> "Record":
    return cls(method, segment, config.resolution, config.qp, config.fps, config.threshold,
               outcome.accuracy, outcome.bytes, outcome.frames_sent, **costs)

  @property
  def config(self) -> Config:
    return Config(self.resolution, self.qp, self.fps, self.threshold)


@dataclasses.dataclass(frozen=True)
class Tradeoff:
  """A fixed `lam` or a `budget` (bytes per second of video); exactly one is set."""

  lam: float | None = None
  budget: float | None = None

  def __post_init__(self):
    if (self.lam is None) == (self.budget is None):
      raise ValueError("a trade-off is a lambda or a budget (bytes/s), exactly one")
    if self.lam is not None and not (np.isfinite(self.lam) and self.lam >= 0):
      raise ValueError(f"lambda must be finite and >= 0, got {self.lam}")
    if self.budget is not None and not (np.isfinite(self.budget) and self.budget > 0):
      raise ValueError(f"budget must be a positive number of bytes per second, got {self.budget}")

  @property
  def label(self) -> str:
    return f"lambda={self.lam:g}" if self.lam is not None else f"budget={self.budget:g}B/s"

  def score(self, accuracy: float, num_bytes: float, best_bytes: float, seconds: float = 1.0):
    """A key to maximise: utility for a lambda; for a budget, the most accurate configuration
    that fits, or the cheapest when none does."""
    if self.lam is not None:
      return (1, utility(accuracy, num_bytes, best_bytes, self.lam))
    if num_bytes <= self.budget * seconds:
      return (1, accuracy)
    return (0, -num_bytes)


def utility(accuracy: float, num_bytes: float, best_bytes: float, lam: float) -> float:
  return accuracy - lam * num_bytes / best_bytes


@dataclasses.dataclass
class Workload:
  """A task on a clip: the model, its proxy and metric, and the segments with references."""

  task: str
  clip: str
  segments: list
  model: object
  references: list
  preset: str = "veryfast"
  resolution_values: tuple = tuple(float(v) for v in knobs.resolution().values)
  qp_values: tuple = tuple(float(v) for v in knobs.quantization().values)
  fps_values: tuple = tuple(float(v) for v in knobs.frame_rate(source_fps=SOURCE_FPS).values)
  grid_fps: tuple = (5.0, SOURCE_FPS)  # the frame rates the profiling baselines search
  proxy: str | None = None  # one of the task's `alternatives`; None: its default proxy
  _evaluated: dict = dataclasses.field(default_factory=dict, repr=False)

  @classmethod
  def build(cls, task: str, clip: str, *, max_segments: int | None = None,
            segment_seconds: float = 1.0, preset: str = "veryfast",
            proxy: str | None = None) -> "Workload":
    """`clip`: a bundled clip's name (`oneadapt_jax.data.CLIPS`), `tfds:NAME` for the same clip
    read through the tensorflow-datasets builder (`oneadapt_jax.tfds_video`), or the path of a
    video file. `proxy`: another proxy for the task to ascend (e.g. `"expected_f1"` for
    detection), by its name in `proxy_check.TASKS[task].alternatives`."""
    if task not in proxy_check.TASKS:
      raise ValueError(f"unknown task {task!r}; available: {sorted(proxy_check.TASKS)}")
    spec = proxy_check.TASKS[task]
    if proxy is not None and proxy not in spec.alternatives:
      raise ValueError(f"task {task!r} has no proxy {proxy!r}; besides its default it has "
                       f"{sorted(spec.alternatives) or 'none'}")
    model = models.load(spec.model)
    if clip.startswith("tfds:"):
      if segment_seconds != 1.0:
        raise ValueError("the tfds builder stores 1-s segments (config fps10_1s)")
      from oneadapt_jax import tfds_video

      source = tfds_video.data_source(clip.removeprefix("tfds:"))
      segments = [data.Segment(np.asarray(e["frames"]), str(e["clip"]), int(e["index"]),
                               float(e["fps"]))
                  for e in (source[i] for i in range(len(source)))]
      segments = sorted(segments, key=lambda s: s.index)[:max_segments]
    elif clip in data.CLIPS:
      segments = data.clip_segments(clip, segment_seconds=segment_seconds)[:max_segments]
    else:  # a video file of the user's
      segments = data.from_video(clip, segment_seconds=segment_seconds,
                                 progress=False)[:max_segments]
    if not segments:
      raise ValueError(f"clip {clip!r} has no segments to adapt over")
    workload = cls(task, clip, segments, model, [], preset, proxy=proxy)
    workload.references = [workload.post(workload.run(s.as_float())) for s in segments]
    return workload

  @property
  def spec(self) -> proxy_check.Task:
    spec = proxy_check.TASKS[self.task]
    if self.proxy is None:
      return spec
    return dataclasses.replace(spec, proxy=spec.alternatives[self.proxy])

  @property
  def frames_per_segment(self) -> int:
    return len(self.segments[0].frames)

  @property
  def seconds_per_segment(self) -> float:
    return self.frames_per_segment / SOURCE_FPS

  @property
  def best(self) -> Config:
    """The best-quality configuration: the normaliser of the bytes and the top of every ladder."""
    return Config(max(self.resolution_values), min(self.qp_values), max(self.fps_values))

  @functools.cached_property
  def _jitted(self):
    return jax.jit(lambda x: self.model(x))

  modality = "video"

  @property
  def knob_fields(self) -> tuple[str, ...]:
    """The `Config` fields a knob-at-a-time search (Chameleon) walks."""
    return ("resolution", "qp", "fps")

  def grid(self, *, qp_stride: int = 3, fps=None) -> list[Config]:
    """The joint discrete configurations the profiling baselines and the oracle search: every
    resolution, every `qp_stride`-th QP (the best included) and the frame rates `fps` (default:
    `grid_fps`)."""
    qps = self.qp_values[::-1][::qp_stride][::-1]  # stride from the best QP down
    fps = self.grid_fps if fps is None else tuple(fps)
    return [Config(r, q, f) for r, q, f in itertools.product(self.resolution_values, qps, fps)]

  def raw(self, index: int) -> jax.Array:
    """Segment `index` as the knobs take it: `float32 [T, H, W, 3]` in `[0, 1]`."""
    return jnp.asarray(self.segments[index].as_float())

  def record(self, method: str, segment: int, config: Config, outcome: Outcome,
             **costs) -> Record:
    return Record.of(method, segment, config, outcome, **costs)

  def run(self, frames):
    return self._jitted(jnp.asarray(frames))

  def post(self, outputs):
    return proxy_check.per_frame(self.spec, self.model, outputs, self.segments[0].size)

  def encode(self, index: int, config: Config) -> codec.Encoding:
    frames = self.segments[index].frames
    sent = None
    if config.threshold is not None:
      sent = np.asarray(knobs.frame_filter_sent(frames.astype(np.float32) / 255.0,
                                                config.threshold))
    fps = None if config.fps >= SOURCE_FPS else config.fps
    return codec.encode(frames, resolution=config.resolution, qp=config.qp, fps=fps,
                        source_fps=SOURCE_FPS, sent=sent, preset=self.preset)

  def evaluate(self, index: int, config: Config) -> Outcome:
    """Real accuracy, bytes and frames sent of one segment at one configuration (computed once).

    The model runs on the frames sent; a frame not sent reuses the output of the last frame sent
    (what the server does), and the metric is taken over every frame.
    """
    key = (index, Config(*config))
    if key not in self._evaluated:
      encoded = self.encode(index, config)
      sent = np.flatnonzero(encoded.sent)
      held = np.cumsum(encoded.sent) - 1  # which sent frame each frame shows
      outputs = self.run(encoded.as_float()[sent])
      outputs = self.post(jax.tree.map(lambda o: o[held], outputs))
      accuracy = metrics.segment_mean(self.spec.metric, outputs, self.references[index])
      self._evaluated[key] = Outcome(accuracy, encoded.num_bytes, encoded.frames_sent)
    return self._evaluated[key]

  def best_bytes(self, index: int) -> int:
    return self.evaluate(index, self.best).bytes
