"""Video: a task on a clip, sent for real with x264, the model run on what was decoded.

Knobs, in sending order: `resolution` -> `frame_rate` -> `qp` (`knob_chain`; only the
quantization member counts bytes, with the rate model that `oneadapt fidelity` checks against
x264). The real sender (`oneadapt_jax.codec.encode`) scales, drops frames, encodes at the QP and
decodes; a frame not sent reuses the output of the last frame sent (what the server does), and
the metric is taken over every frame against the model's output on the raw frames (the
reference, as in the paper). Reducto's camera-side `frame_filter` is an extra knob of the sender.

The `roi` chain is one QP per macroblock (`knobs.roi_quality` on the `ROI_QPS` ladder, x264's
region-of-interest offsets), and its sender also speaks DDS's two-pass protocol: a configuration
naming `requery_qp` sends the segment at its `roi_quality` first, then the regions the server is
unsure of at `requery_qp` (`_regions`).
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
import models
from oneadapt_jax import codec, data, metrics
from oneadapt_jax.core import Config, Outcome, ServerVjp, WorkloadBase
from oneadapt_jax.workloads.video import _filter, _regions
from oneadapt_jax.workloads.video._tasks import TASKS, Task, default_model, per_frame, task_spec

#: Reducto's difference features, as a configuration's `filter_feature` indexes them.
FILTER_FEATURES = _filter.FEATURES
#: The per-macroblock QPs of the `roi` chain, cheapest first: the paper's macroblock pipeline
#: chooses between QP 36 and 24 per block; two more rungs let a curve be traced.
ROI_QPS = (42.0, 36.0, 30.0, 24.0)
#: The knob chains a video workload can adapt.
CHAINS = ("encoding", "frame_filter", "roi")


def knob_chain(source_fps: float = data.ANALYSIS_FPS, *, ycbcr420: bool = False) -> knobs.Knob:
  """resolution -> frame_rate -> quantization; the quantization member counts the bytes.

  `ycbcr420`: where the frames come in whole 16x16 macroblocks, the members pass 4:2:0 planes
  (`knobs.YCbCr420`): the resolution filters the chroma at the size the quantization codes it
  (at 720p the camera's step a fifth shorter, step / inference 2.1 to 1.6 on 2 CPU cores), and
  clips each 8-bit plane as a scaler writing yuv420p does, where the default clips RGB. The two
  differ only where the filter's ringing clips, but on vtest that moved the controller's
  choices (benchmarks/RESULTS.md, "the chroma fold, built, opt-in"), so it is not the default.
  Other sizes pass RGB."""
  return knobs.chain(**_chain_members(source_fps, ycbcr420=ycbcr420))


def _chain_members(source_fps: float, *, ycbcr420: bool = False) -> dict[str, knobs.Knob]:
  resolution = _to_planes(knobs.resolution()) if ycbcr420 else knobs.resolution()
  return {"resolution": knobs.scale_cost(resolution, 0.0, unit="bytes"),
          "frame_rate": knobs.scale_cost(knobs.frame_rate(source_fps=source_fps), 0.0,
                                         unit="bytes"),
          "qp": knobs.quantization()}


def _to_planes(resolution: knobs.Knob) -> knobs.Knob:
  """`resolution` handing on 4:2:0 planes (its `apply(..., ycbcr420=True)`) where the frames
  come in whole macroblocks, which the quantization codes as they lie; RGB otherwise."""
  def apply(setting, frames, *, channel_axis=-1):
    return resolution.apply(setting, frames, channel_axis=channel_axis,
                            ycbcr420=_in_macroblocks(frames, channel_axis))

  return resolution._replace(apply=apply)


def _in_macroblocks(frames, channel_axis: int) -> bool:
  if getattr(frames, "ndim", 0) < 4 or channel_axis not in (-1, -3):
    return False  # the resolution knob names the problem
  h, w = frames.shape[-3:-1] if channel_axis == -1 else frames.shape[-2:]
  return h % codec.MACROBLOCK == 0 and w % codec.MACROBLOCK == 0


def _encoded(members, setting, frames, *, channel_axis, picked=None, out_axis=None):
  """The encoding chain on RGB `frames`, as `knobs.chain` of `members` runs it: the
  quantization's output on the `picked` frames (all by default) in the layout of `out_axis`
  (that of `frames` by default), and every frame after the frame rate (what the bytes count; a
  `knobs.YCbCr420` where the resolution hands planes on, `knob_chain`)."""
  out_axis = channel_axis if out_axis is None else out_axis
  held = members["frame_rate"].apply(
      setting["frame_rate"],
      members["resolution"].apply(setting["resolution"], frames, channel_axis=channel_axis),
      channel_axis=channel_axis)
  some = held if picked is None else jax.tree.map(lambda x: x[..., picked, :, :, :], held)
  if isinstance(held, knobs.YCbCr420):  # the decoder's RGB comes out in any layout
    return members["qp"].apply(setting["qp"], some, channel_axis=out_axis), held
  shown = members["qp"].apply(setting["qp"], some, channel_axis=channel_axis)
  return jnp.moveaxis(shown, channel_axis, out_axis), held


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
    segments: `oneadapt_jax.data.Segment`s of one frame rate and size, a list or a
      `data.ClipSegments` that decodes each when it is read (what bundled clips and files are:
      the workload keeps the references, not the frames).
    model: the task's model.
    proxy_name: one of the task's `alternatives`; `None`, its default proxy.
    model_name: the model's name when it is not the task's own (`task_spec`).
    preset: the x264 preset of the real sender.
    qp_stride: the profiling grid takes every `qp_stride`-th QP (the best included).
    warmup_segments: the prefix no method is scored on (see `Workload`).
    chain: `"encoding"` (resolution, frame rate, QP; Reducto's frame filter an extra knob of the
      sender), `"frame_filter"` (the frame filter alone, at the best encoding: what OneAdapt
      drives when it is compared with Reducto) or `"roi"` (a QP per macroblock at full
      resolution and frame rate; DDS's `requery_qp` an extra knob of the sender).
    ycbcr420: the encoding chain passes 4:2:0 planes between its knobs (`knob_chain`): the
      camera's step a fifth shorter at 720p, but its clip is not the default chain's.
  """

  kind = "video"
  task: str
  source: str
  segments: Sequence
  model: nnx.Module
  proxy_name: str | None = None
  preset: str = "veryfast"
  model_name: str | None = None
  qp_stride: int = 3
  warmup_segments: int = 0
  chain: str = "encoding"
  ycbcr420: bool = False
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
      self._members = _chain_members(self.source_fps, ycbcr420=self.ycbcr420)
      self.knob = knobs.chain(**self._members)
      self.extra_knobs = {"frame_filter": knobs.frame_filter()}
    elif self.chain == "frame_filter":
      self.knob, self.extra_knobs = knobs.chain(frame_filter=knobs.frame_filter()), {}
    elif self.chain == "roi":
      self.knob = knobs.chain(roi_quality=knobs.roi_quality(self.segments[0].size,
                                                            values=ROI_QPS))
      self.extra_knobs = {"requery_qp": knobs.quantization(values=ROI_QPS)}
    else:
      raise ValueError(f"unknown knob chain {self.chain!r}; available: {', '.join(CHAINS)}")
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
  def proxies(self) -> dict:
    """The task's other proxies by name (what `Controller(proxy=...)` may ascend instead)."""
    return dict(self.spec.alternatives)

  @property
  def frames_per_segment(self) -> int:
    return len(self.segments[0].frames)

  @property
  def seconds_per_segment(self) -> float:
    return self.frames_per_segment / self.source_fps

  def identity(self) -> dict:
    """`WorkloadBase.identity`, and the clip's first segment where a window starts later
    (`build(first_segment=...)`): outcomes are kept by position in the window."""
    first = self.segments[0].index
    return {**super().identity(), **({"first_segment": first} if first else {})}

  def raw(self, index: int) -> jax.Array:
    """Segment `index` as the knobs take it: `float32 [T, H, W, 3]` in `[0, 1]`."""
    return jnp.asarray(self.segments[index].as_float())

  def shown(self, setting, raw, frames):
    """The knobs' output on the given frames: what the model sees of them. The encoding chain
    quantizes the given frames alone (its reconstruction of a frame depends on that frame
    only): coding every frame and slicing after left the other frames' backward pass to XLA,
    which fused it into the frame rate's and ran it once per frame (the fused estimator took
    2.3 times as long on vtest)."""
    if self.chain != "encoding":
      return self.knob.apply(setting, raw)[..., frames, :, :, :]
    return self._shown_and_held(setting, raw, frames)[0]

  def shown_and_cost(self, setting, raw, frames):
    """`shown` and the chain's bytes in one pass, sharing the resolution and frame-rate stages;
    the quantization codes the picked frames alone for `shown` and every frame for the bytes.
    Equal to the two apart, and at 720p about 40% cheaper for the camera's `vjp`
    (benchmarks/throughput.py)."""
    if self.chain != "encoding":
      return super().shown_and_cost(setting, raw, frames)
    shown, held = self._shown_and_held(setting, raw, frames)
    # The other members' bytes are scaled by 0 (`knob_chain`): the quantization counts them all.
    return shown, self._members["qp"].cost(setting["qp"], held, channel_axis=-3)

  def _shown_and_held(self, setting, raw, frames):
    """The encoding chain's output on `frames` (channels last), and every frame after the frame
    rate (channels first, or a `knobs.YCbCr420`: `knob_chain`).

    The chain runs channels first from the raw frames to the quantization's output: the
    resolution filter works on colour planes and the quantization codes them, and each
    transposition of the channel axis between them (forward, and again backward) was a pass
    over the segment that XLA's CPU backend runs slowly (about 5% of the camera's step at
    720p, benchmarks/RESULTS.md). Only the picked frames come out channels last."""
    # The planes once, in memory: left to XLA, the transposition fused into each of its readers,
    # and the resolution's backward pass (its clip, at the raw frames at scale 1) read the
    # segment across the channel axis, slowly (107 of its ms at 720p in a trace; the camera's
    # step 3% faster with the barrier, the same bits; benchmarks/RESULTS.md).
    planes = jax.lax.optimization_barrier(jnp.moveaxis(raw, -1, -3))
    return _encoded(self._members, setting, planes, channel_axis=-3, picked=frames,
                    out_axis=-1)

  def grid(self) -> list[Config]:
    """Every resolution, every `qp_stride`-th QP (the best included) and the two top frame
    rates; a knob-at-a-time search walks resolution, QP, then frame rate. (The frame-filter
    chain: every threshold; the roi chain: every QP, the same in every macroblock.)"""
    if self.chain != "encoding":
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
    if "roi_quality" in config:  # x264's per-macroblock offsets (CRF: see `codec`)
      roi_qp = self.roi_map(config["roi_quality"])
      return codec.encode(frames, qp=float(roi_qp.max()), roi_qp=roi_qp, preset=self.preset)
    best_qp = float(knobs.quantization().values[-1])
    return codec.encode(frames, resolution=config.get("resolution", 1.0),
                        qp=config.get("qp", best_qp),
                        fps=None if fps >= self.source_fps else fps,
                        source_fps=self.source_fps, sent=sent, preset=self.preset)

  def roi_map(self, value) -> np.ndarray:
    """A `roi_quality` value (one QP, or a map of one per macroblock) as the frame's map."""
    grid = codec.macroblock_grid(*self.segments[0].size)
    qps = np.asarray(value, np.float64)
    if qps.ndim not in (0, 2) or (qps.ndim == 2 and qps.shape != grid):
      raise ValueError(f"roi_quality is one QP or a {grid[0]}x{grid[1]} map of them (one per "
                       f"macroblock of {self.segments[0].size}), got shape {qps.shape}")
    if not np.all(np.isin(qps, ROI_QPS)):
      raise ValueError(f"roi_quality QPs are on the ladder {ROI_QPS}, got "
                       f"{sorted(set(np.unique(qps)) - set(ROI_QPS))}")
    return np.broadcast_to(qps, grid)

  def sent(self, index: int, config: Config, frames) -> tuple[jax.Array, int]:
    """The decoded frames the model sees at the given frame indices (a frame not sent: the last
    one sent), and the segment's bytes (one pass: DDS's second depends on the server)."""
    if "requery_qp" in config:
      raise ValueError("a two-pass (requery_qp) configuration's second pass depends on the "
                       "server's answer: the camera cannot encode it alone")
    encoded = self.encode(index, config)
    return jnp.asarray(encoded.as_float()[np.asarray(frames, int)]), int(encoded.num_bytes)

  def observe(self, index: int, config: Config, *, keep=None):
    """The model on the frames sent; a frame not sent reuses the output of the last frame sent,
    and the metric is taken over every frame. Returns the outputs on the frames sent.

    `keep`: frame indices whose forward pass runs through `jax.vjp`, its pullback kept for
    `server_vjp` (OneAdapt's DNNGrad on the decoded frames, with no second forward pass)."""
    if "requery_qp" in config:
      return self._two_pass(index, config)
    encoded = self.encode(index, config)
    sent = np.flatnonzero(encoded.sent)
    held = np.cumsum(encoded.sent) - 1  # which sent frame each frame shows
    decoded = jnp.asarray(encoded.as_float()[sent])
    if keep is None:
      outputs = self._infer(decoded)
    else:
      outputs = self._infer_keeping(index, config, decoded, held, tuple(keep))
    shown = self.post(jax.tree.map(lambda o: o[held], outputs))
    accuracy = metrics.segment_mean(self.spec.metric, shown, self.references[index])
    return outputs, self.remember(index, config,
                                  Outcome(accuracy, encoded.num_bytes, encoded.frames_sent))

  def _infer_keeping(self, index, config, decoded, held, keep):
    """`_infer(decoded)`, the sent frames that the `keep` frames show run through `jax.vjp`
    (one forward pass each; a sent frame two of them show runs twice)."""
    shows = held[np.asarray(keep, int)]  # the sent frame each kept frame shows
    rest = np.setdiff1d(np.arange(len(decoded)), shows)
    inputs = decoded[shows]
    kept_out, pullback = jax.vjp(self._infer, inputs)
    self.keep_pullback(index, config, keep, ServerVjp(inputs, kept_out, pullback,
                                                      len(shows) - len(set(shows.tolist()))))
    unique, first = np.unique(shows, return_index=True)
    kept_out = jax.tree.map(lambda o: o[first], kept_out)
    if not len(rest):
      return kept_out
    order = np.argsort(np.concatenate([unique, rest]))  # back to the order of the sent frames
    return jax.tree.map(lambda k, r: jnp.concatenate([k, r])[order], kept_out,
                        self._infer(decoded[rest]))

  def _two_pass(self, index: int, config: Config):
    """DDS's protocol (`_regions`): the segment at `roi_quality`, then the regions the server is
    unsure of at `requery_qp`; bytes of both passes, a forward pass per frame of each."""
    spec = self.spec
    if spec.candidates is None:
      raise ValueError(f"DDS asks again about uncertain detections: the {self.task} task with "
                       f"{spec.model} has none (detection tasks have)")
    size = self.segments[0].size
    first = self.encode(index, {"roi_quality": config["roi_quality"]})
    first_out = self._infer(jnp.asarray(first.as_float()))
    frame_out = [jax.tree.map(lambda o: np.asarray(o[t]), first_out)
                 for t in range(self.frames_per_segment)]
    unsure = [spec.candidates(self.model, out, size, _regions.LOW_THRESHOLD) for out in frame_out]
    masks = np.stack([_regions.macroblock_mask(_regions.regions_to_query(d, size), size)
                      for d in unsure])
    asked = np.flatnonzero(masks.any(axis=(1, 2)))
    second = [models.Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 0, 2)))
              for _ in unsure]
    num_bytes = first.num_bytes
    if len(asked):
      pixels = np.stack([_regions.pixel_mask(m, size) for m in masks])[..., None]
      frames = self.segments[index].frames
      requery = self.roi_map(config["requery_qp"])
      resent = codec.encode(np.where(pixels, frames, 0).astype(np.uint8),
                            qp=float(requery.max()), roi_qp=requery, preset=self.preset)
      num_bytes += resent.num_bytes
      composite = np.where(pixels, resent.frames, first.frames)[asked]
      outputs = self._infer(jnp.asarray(composite.astype(np.float32) / 255.0))
      for k, t in enumerate(asked):
        out = jax.tree.map(lambda o: np.asarray(o[k]), outputs)
        second[t] = spec.candidates(self.model, out, size, _regions.DETECTION_THRESHOLD)
    boxes = [_regions.merge(s, f) for s, f in zip(second, unsure)]
    accuracy = metrics.segment_mean(spec.metric, boxes, self.references[index])
    return boxes, self.remember(index, config, Outcome(
        accuracy, num_bytes, self.frames_per_segment + len(asked)))


def build(*, task: str = "detection", source: str = "carphone", proxy: str | None = None,
          max_segments: int | None = None, segment_seconds: float = 1.0,
          preset: str = "veryfast", model: str | None = None,
          qp_stride: int = 3, warmup: int = 0, chain: str = "encoding",
          first_segment: int = 0, ycbcr420: bool = False) -> VideoWorkload:
  """A video workload. `source`: a bundled clip's name (`oneadapt_jax.data.CLIPS`), `tfds:NAME`
  for the same clip read through the tensorflow-datasets builder (`oneadapt_jax.tfds_video`), or
  the path of a video file. `proxy`: another proxy of the task to ascend (e.g. `"expected_f1"`
  for detection). `model`: the task's model; by default the task's own, or the one the clip
  calls for (`CLIP_MODELS`: pedestrians on vtest). `qp_stride`: the profiling grid's QP step
  (every `qp_stride`-th of the 16 QPs, the best included). `warmup`: segments at the start
  that no method is scored on. `chain`: `"encoding"` or `"frame_filter"` (`VideoWorkload`).
  `first_segment`: the clip's segments before it are skipped (a later part of the clip, e.g.
  one held out from what a proxy was tuned on); `max_segments` counts from it. `ycbcr420`: the
  encoding chain passes 4:2:0 planes (`VideoWorkload`)."""
  model = model or default_model(task, source)
  _check(task, proxy, model)  # before any clip is decoded or model loaded
  if isinstance(first_segment, bool) or not isinstance(first_segment, int) or first_segment < 0:
    raise ValueError(f"first_segment must be an integer >= 0, got {first_segment!r}")
  window = slice(first_segment, None if max_segments is None else first_segment + max_segments)
  if source.startswith("tfds:"):
    if segment_seconds != 1.0:
      raise ValueError("the tfds builder stores 1-s segments (config fps10_1s)")
    from oneadapt_jax import tfds_video

    segments = tfds_video.Segments(source.removeprefix("tfds:"))[window]
  elif source in data.CLIPS:
    segments = data.clip_segments(source, segment_seconds=segment_seconds)[window]
  else:  # a video file of the user's
    if not pathlib.Path(source).exists():
      raise ValueError(f"{source!r} is neither a bundled clip ({', '.join(data.CLIPS)}) nor a "
                       f"video file")
    segments = data.from_video(source, segment_seconds=segment_seconds,
                               stream=True)[window]
  if not segments:
    raise ValueError(f"clip {source!r} has no segments to adapt over"
                     + (f" from segment {first_segment}" if first_segment else ""))
  spec = task_spec(task, model)
  return VideoWorkload(task, source, segments, models.load(spec.model), proxy, preset,
                       qp_stride=qp_stride, model_name=spec.model, warmup_segments=warmup,
                       chain=chain, ycbcr420=ycbcr420)
