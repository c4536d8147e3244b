"""Video: a task on a clip, sent for real with x264, the model run on what was decoded.

Knobs, in sending order: `resolution` -> `frame_rate` -> `qp` (`knob_chain`; only the
quantization member counts bytes, with the rate model that `oneadapt fidelity` checks against
x264). The real sender (`oneadapt_jax.codec.encode`) scales, drops frames, encodes at the QP and
decodes; a frame not sent reuses the output of the last frame sent (what the server does), and
the metric is taken over every frame against the model's output on the raw frames (the
reference, as in the paper). Reducto's camera-side `frame_filter` is an extra knob of the sender.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
import models
from oneadapt_jax import codec, data, metrics
from oneadapt_jax.core import Config, Outcome, WorkloadBase
from oneadapt_jax.workloads.video import _filter
from oneadapt_jax.workloads.video._tasks import TASKS, Task, default_model, per_frame, task_spec

#: Reducto's difference features, as a configuration's `filter_feature` indexes them.
FILTER_FEATURES = _filter.FEATURES


def knob_chain(source_fps: float = data.ANALYSIS_FPS) -> knobs.Knob:
  """resolution -> frame_rate -> quantization; the quantization member counts the bytes."""
  return knobs.chain(
      resolution=knobs.scale_cost(knobs.resolution(), 0.0, unit="bytes"),
      frame_rate=knobs.scale_cost(knobs.frame_rate(source_fps=source_fps), 0.0, unit="bytes"),
      qp=knobs.quantization(),
  )


def _check(task: str, proxy: str | None, model: str | None = None) -> None:
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; available: {sorted(TASKS)}")
  spec = task_spec(task, model)
  if proxy is not None and proxy not in spec.alternatives:
    raise ValueError(f"task {task!r} with {spec.model} has no proxy {proxy!r}; besides its "
                     f"default it has {sorted(spec.alternatives) or 'none'}")


@dataclasses.dataclass(eq=False)
class VideoWorkload(WorkloadBase):
  """A task on a clip: the model, its proxy and metric, the segments and their references.

  Attributes:
    task: a name in `TASKS`.
    source: the clip's name, `tfds:NAME` or a video file's path.
    segments: `oneadapt_jax.data.Segment`s of one frame rate and size.
    model: the task's model.
    proxy_name: one of the task's `alternatives`; `None`, its default proxy.
    model_name: the model's name when it is not the task's own (`task_spec`).
    preset: the x264 preset of the real sender.
    qp_stride: the profiling grid takes every `qp_stride`-th QP (the best included).
    warmup_segments: the prefix no method is scored on (see `Workload`).
    chain: `"encoding"` (resolution, frame rate, QP; Reducto's frame filter an extra knob of the
      sender) or `"frame_filter"` (the frame filter alone, at the best encoding: what OneAdapt
      drives when it is compared with Reducto).
  """

  kind = "video"
  task: str
  source: str
  segments: list
  model: nnx.Module
  proxy_name: str | None = None
  preset: str = "veryfast"
  model_name: str | None = None
  qp_stride: int = 3
  warmup_segments: int = 0
  chain: str = "encoding"
  references: list = dataclasses.field(default_factory=list, repr=False)

  def __post_init__(self):
    _check(self.task, self.proxy_name, self.model_name)
    if not self.segments:
      raise ValueError(f"clip {self.source!r} has no segments to adapt over")
    if not 0 <= self.warmup_segments < len(self.segments):
      raise ValueError(f"a warm-up of {self.warmup_segments} segments leaves none to score on "
                       f"{self.source!r} ({len(self.segments)} segments)")
    self.source_fps = float(self.segments[0].fps)
    if self.chain == "encoding":
      self.knob = knob_chain(self.source_fps)
      self.extra_knobs = {"frame_filter": knobs.frame_filter()}
    elif self.chain == "frame_filter":
      self.knob, self.extra_knobs = knobs.chain(frame_filter=knobs.frame_filter()), {}
    else:
      raise ValueError(f"unknown knob chain {self.chain!r}; available: encoding, frame_filter")
    self._infer = jax.jit(lambda x: self.model(x))
    if not self.references:
      self.references = [self.post(self._infer(jnp.asarray(s.as_float())))
                         for s in self.segments]

  @property
  def spec(self) -> Task:
    return task_spec(self.task, self.model_name)

  @property
  def proxy(self):
    spec = self.spec
    return spec.proxy if self.proxy_name is None else spec.alternatives[self.proxy_name]

  @property
  def frames_per_segment(self) -> int:
    return len(self.segments[0].frames)

  @property
  def seconds_per_segment(self) -> float:
    return self.frames_per_segment / self.source_fps

  def raw(self, index: int) -> jax.Array:
    """Segment `index` as the knobs take it: `float32 [T, H, W, 3]` in `[0, 1]`."""
    return jnp.asarray(self.segments[index].as_float())

  def shown(self, setting, raw, frames):
    """The knobs' output on the given frames: what the model sees of them."""
    return self.knob.apply(setting, raw)[..., frames, :, :, :]

  def grid(self) -> list[Config]:
    """Every resolution, every `qp_stride`-th QP (the best included) and the two top frame
    rates; a knob-at-a-time search walks resolution, QP, then frame rate. (The frame-filter
    chain: every threshold.)"""
    if self.chain == "frame_filter":
      return super().grid()
    ladders = self.ladders()
    qps = self.ladders(stride=self.qp_stride)["qp"]
    return [{"resolution": r, "qp": q, "frame_rate": f} for r, q, f in
            itertools.product(ladders["resolution"], qps, ladders["frame_rate"][-2:])]

  #: Reducto's difference features, as a configuration's `filter_feature` indexes them.
  filter_feature_names = FILTER_FEATURES

  def filter_features(self, index: int, feature: str) -> np.ndarray:
    """Reducto's difference `feature` (`FILTER_FEATURES`) of each frame of segment `index`
    against the one before it, on the camera's raw frames: `float [T - 1]`."""
    return _filter.consecutive(feature, self.segments[index].frames)

  def post(self, outputs):
    return per_frame(self.spec, self.model, outputs, self.segments[0].size)

  def encode(self, index: int, config: Config) -> codec.Encoding:
    """The real sender: x264 at the configuration (frames filtered first when it names a
    `frame_filter` threshold; `filter_feature` picks Reducto's difference feature, an index
    into `FILTER_FEATURES`, the changed-pixel fraction by default)."""
    frames = self.segments[index].frames
    sent = None
    feature = int(config.get("filter_feature", 0))
    if not 0 <= feature < len(_filter.FEATURES):
      raise ValueError(f"filter_feature is an index into {_filter.FEATURES}, got {feature}")
    if config.get("frame_filter") is not None and feature == 0:
      sent = np.asarray(knobs.frame_filter_sent(frames.astype(np.float32) / 255.0,
                                                config["frame_filter"]))
    elif config.get("frame_filter") is not None:
      sent = _filter.sent_frames(_filter.FEATURES[feature], frames, config["frame_filter"])
    fps = config.get("frame_rate", self.source_fps)
    best_qp = float(knobs.quantization().values[-1])
    return codec.encode(frames, resolution=config.get("resolution", 1.0),
                        qp=config.get("qp", best_qp),
                        fps=None if fps >= self.source_fps else fps,
                        source_fps=self.source_fps, sent=sent, preset=self.preset)

  def observe(self, index: int, config: Config):
    """The model on the frames sent; a frame not sent reuses the output of the last frame sent,
    and the metric is taken over every frame. Returns the outputs on the frames sent."""
    encoded = self.encode(index, config)
    sent = np.flatnonzero(encoded.sent)
    held = np.cumsum(encoded.sent) - 1  # which sent frame each frame shows
    outputs = self._infer(jnp.asarray(encoded.as_float()[sent]))
    shown = self.post(jax.tree.map(lambda o: o[held], outputs))
    accuracy = metrics.segment_mean(self.spec.metric, shown, self.references[index])
    return outputs, self.remember(index, config,
                                  Outcome(accuracy, encoded.num_bytes, encoded.frames_sent))


def build(*, task: str = "detection", source: str = "carphone", proxy: str | None = None,
          max_segments: int | None = None, segment_seconds: float = 1.0,
          preset: str = "veryfast", model: str | None = None,
          qp_stride: int = 3, warmup: int = 0, chain: str = "encoding") -> VideoWorkload:
  """A video workload. `source`: a bundled clip's name (`oneadapt_jax.data.CLIPS`), `tfds:NAME`
  for the same clip read through the tensorflow-datasets builder (`oneadapt_jax.tfds_video`), or
  the path of a video file. `proxy`: another proxy of the task to ascend (e.g. `"expected_f1"`
  for detection). `model`: the task's model; by default the task's own, or the one the clip
  calls for (`CLIP_MODELS`: pedestrians on vtest). `qp_stride`: the profiling grid's QP step
  (every `qp_stride`-th of the 16 QPs, the best included). `warmup`: segments at the start
  that no method is scored on. `chain`: `"encoding"` or `"frame_filter"` (`VideoWorkload`)."""
  model = model or default_model(task, source)
  _check(task, proxy, model)  # before any clip is decoded or model loaded
  if source.startswith("tfds:"):
    if segment_seconds != 1.0:
      raise ValueError("the tfds builder stores 1-s segments (config fps10_1s)")
    from oneadapt_jax import tfds_video

    reader = tfds_video.data_source(source.removeprefix("tfds:"))
    segments = [data.Segment(np.asarray(e["frames"]), str(e["clip"]), int(e["index"]),
                             float(e["fps"]))
                for e in (reader[i] for i in range(len(reader)))]
    segments = sorted(segments, key=lambda s: s.index)[:max_segments]
  elif source in data.CLIPS:
    segments = data.clip_segments(source, segment_seconds=segment_seconds)[:max_segments]
  else:  # a video file of the user's
    if not pathlib.Path(source).exists():
      raise ValueError(f"{source!r} is neither a bundled clip ({', '.join(data.CLIPS)}) nor a "
                       f"video file")
    segments = data.from_video(source, segment_seconds=segment_seconds,
                               progress=False)[:max_segments]
  if not segments:
    raise ValueError(f"clip {source!r} has no segments to adapt over")
  spec = task_spec(task, model)
  return VideoWorkload(task, source, segments, models.load(spec.model), proxy, preset,
                       qp_stride=qp_stride, model_name=spec.model, warmup_segments=warmup,
                       chain=chain)
