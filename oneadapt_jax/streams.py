"""Audio and LiDAR streams as workloads: the same controller, baselines and CLI as video.

A `StreamWorkload` is what `oneadapt_jax.workload.Workload` is for video: segments of a real
stream, a model trained here, a differentiable proxy and a real metric against the model's
output on the best-quality input, and `evaluate(i, config)`, which sends segment `i` the way a
real sender would at a discrete configuration and returns the real accuracy and bytes.

- `audio`: keyword spotting (`models.KeywordSpotter`) on 1-s segments of held-out espeak-ng
  voices whose noise drifts (`oneadapt_jax.speech.stream`). Knobs, in the sender's order:
  `sample_rate` -> `bit_depth` -> `chunk_drop`. Sending: `scipy.signal.resample_poly` down to the
  rate and back up to 16 kHz (a polyphase FIR, not the knob's FFT mask), signed PCM at the bit
  depth, chunks under the RMS threshold replaced by silence. Bytes: the PCM sent,
  `ceil(samples * bits / 8)` per chunk sent. Proxy: the softmax probability of the recognised
  word; metric: 1 if the recognised word is the one recognised on the raw segment.
- `lidar`: per-point ground classification (`models.PointNet`) on held-out autzen tiles, one
  tile per second (`oneadapt_jax.lidar`). Knobs: `point_range` -> `point_density` ->
  `point_quantization`. Sending: the points within the radius of the tile's centre whose
  priority is under the density, coordinates on the grid, as a real
  LAZ file (laspy + lazrs) whose scale is the step. Bytes: that file's size. The server
  classifies the points sent and maps every point of the tile from them (`models.PointNet`'s
  `fill`). Proxy: the mean over the tile's points of the probability of their class; metric:
  mIoU (ground, not ground) against the classification of the full-quality tile.

The proxies and metrics are `oneadapt_jax.proxies.keyword` / `ground` and
`oneadapt_jax.metrics.keyword` / `ground`.

The differentiable cost is each modality's byte model (see `audio_knob`, `lidar_knob`); the
reported bytes are always the real ones.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
import models
from models import _pointnet, _trained
from oneadapt_jax import lidar, metrics, proxies
from oneadapt_jax.workload import Outcome

MODALITIES = ("audio", "lidar")
CHUNKS = 10  # chunk_drop's chunks per 1-s segment
AUDIO_SEGMENTS = 24  # the audio stream's length (max_segments takes its first ones)


class AudioConfig(NamedTuple):
  sample_rate: float = 16000.0
  bit_depth: float = 16.0
  chunk_drop: float = 0.0  # RMS threshold relative to the loudest chunk


class LidarConfig(NamedTuple):
  point_range: float = 60.0  # metres from the tile's centre
  point_density: float = 1.0
  point_quantization: float = 0.01  # metres


@dataclasses.dataclass
class StreamRecord:
  """One method's decision on one segment of an audio or LiDAR stream and what it cost.

  `settings` holds the physical value of each knob; the cost fields mean what they mean in
  `oneadapt_jax.workload.Record` (a segment's forward pass counts as one frame)."""

  method: str
  segment: int
  modality: str
  settings: dict
  accuracy: float
  bytes: int
  dnn_frames: int
  backward_passes: int = 0
  profiling_frames: int = 0
  camera_encodes: int = 1
  lam: float | None = None

  @property
  def config(self):
    return CONFIGS[self.modality](**self.settings)


CONFIGS = {"audio": AudioConfig, "lidar": LidarConfig}


# --------------------------------------------------------------------------- knobs and models


def audio_members() -> dict[str, knobs.Knob]:
  return {"sample_rate": knobs.sample_rate(), "bit_depth": knobs.bit_depth(),
          "chunk_drop": knobs.chunk_drop(chunks=CHUNKS)}


def audio_knob(members: dict | None = None) -> knobs.Knob:
  """The chain sample_rate -> bit_depth -> chunk_drop; cost: bytes of PCM sent,
  `samples * bits / 8 * chunks sent / chunks`, each factor its member's differentiable cost."""
  members = audio_members() if members is None else members
  chain = knobs.chain(**{k: knobs.scale_cost(m, 0.0, unit="bytes") for k, m in members.items()})

  def cost(setting, wave):
    num = wave.shape[-1]
    samples = members["sample_rate"].cost(setting["sample_rate"], wave)
    bits = members["bit_depth"].cost(setting["bit_depth"], wave) / num
    shown = members["bit_depth"].apply(setting["bit_depth"],
                                       members["sample_rate"].apply(setting["sample_rate"], wave))
    sent = members["chunk_drop"].cost(setting["chunk_drop"], shown) / CHUNKS
    return samples * bits / 8.0 * sent

  return chain._replace(cost=cost, unit="bytes")


def lidar_members() -> dict[str, knobs.Knob]:
  return {"point_range": knobs.point_range(centre=(lidar.TILE / 2, lidar.TILE / 2)),
          "point_density": knobs.point_density(), "point_quantization": knobs.point_quantization()}


def lidar_knob(members: dict | None = None) -> knobs.Knob:
  """The chain point_range -> point_density -> point_quantization; the quantization member,
  last, counts the bytes of the points that reach it."""
  members = lidar_members() if members is None else members
  return knobs.chain(point_range=knobs.scale_cost(members["point_range"], 0.0, unit="bytes"),
                     point_density=knobs.scale_cost(members["point_density"], 0.0, unit="bytes"),
                     point_quantization=members["point_quantization"])


class GroundMap(nnx.Module):
  """The LiDAR server: PointNet on the points sent, then every point's class from them."""

  def __init__(self, pointnet: models.PointNet, *, sigma: float = 3.0):
    self.pointnet = pointnet
    self.sigma = sigma

  def __call__(self, cloud) -> jax.Array:
    probabilities = jax.nn.softmax(self.pointnet(cloud), axis=-1)
    return _pointnet.fill(cloud, probabilities, sigma=self.sigma)


def load_model(modality: str) -> nnx.Module:
  """The trained model of a modality, from the verified cache (`make assets` trains it)."""
  if modality == "audio":
    from oneadapt_jax import speech

    return _trained.restore("kws", models.KeywordSpotter(len(speech.WORDS), rngs=nnx.Rngs(0)))
  if modality == "lidar":
    pointnet = models.PointNet(6, 2, extent=lidar.TILE, rngs=nnx.Rngs(0))
    return GroundMap(_trained.restore("pointnet", pointnet))
  raise ValueError(f"unknown modality {modality!r}; available: {MODALITIES}")


# --------------------------------------------------------------------------- proxies, metrics


class Spec(NamedTuple):
  proxy: Callable
  metric: Callable


SPECS = {"audio": Spec(proxies.keyword, metrics.keyword),
         "lidar": Spec(proxies.ground, metrics.ground)}
TASKS = {"audio": "keyword spotting", "lidar": "ground classification"}


# --------------------------------------------------------------------------- sending for real


def send_audio(wave: np.ndarray, config: AudioConfig, *, source_rate: float = 16000.0,
               chunks: int = CHUNKS) -> tuple[np.ndarray, int]:
  """`(what the receiver plays at the source rate, bytes of PCM sent)`."""
  import scipy.signal

  num = len(wave)
  ratio = math.gcd(int(config.sample_rate), int(source_rate))
  up, down = int(config.sample_rate) // ratio, int(source_rate) // ratio
  low = scipy.signal.resample_poly(wave.astype(np.float64), up, down)
  scale = 2.0 ** (int(config.bit_depth) - 1)
  pcm = np.clip(np.round(low * scale), -scale, scale - 1)
  ids = knobs._audio.chunk_ids(len(pcm), chunks)
  rms = np.sqrt(np.array([np.mean((pcm[ids == c] / scale) ** 2) for c in range(chunks)]) + 1e-12)
  sent = rms / rms.max() >= config.chunk_drop - 1e-6
  pcm = pcm * sent[ids]
  played = scipy.signal.resample_poly(pcm / scale, down, up)[:num]
  played = np.pad(played, (0, num - len(played)))
  num_bytes = sum(math.ceil(np.sum(ids == c) * int(config.bit_depth) / 8)
                  for c in range(chunks) if sent[c])
  return np.clip(played, -1, 1).astype(np.float32), int(num_bytes)


def send_points(cloud: knobs.PointCloud, config: LidarConfig) -> tuple[knobs.PointCloud, int]:
  """`(the cloud as the server has it: points on the grid, mask 1 where sent; LAZ bytes)`."""
  points, mask = np.asarray(cloud.points), np.asarray(cloud.mask)
  within = np.hypot(points[:, 0] - lidar.TILE / 2, points[:, 1] - lidar.TILE / 2) <= config.point_range
  sent = within & (knobs._points.priorities(len(mask)) < config.point_density) & (mask > 0)
  step = config.point_quantization
  shown = points.copy()
  shown[:, :3] = np.round(points[:, :3] / step) * step
  num_bytes = len(lidar.encode_laz(shown[sent], step))
  return knobs.PointCloud(shown.astype(np.float32), sent.astype(np.float32)), num_bytes


# --------------------------------------------------------------------------- the workload


@dataclasses.dataclass
class StreamWorkload:
  """An audio or LiDAR stream: the interface of `oneadapt_jax.workload.Workload` that the
  controller (`oneadapt_jax.adapt.oneadapt`), the baselines and `adapt.run` use."""

  modality: str
  clip: str
  segments: list
  model: nnx.Module
  references: list
  _evaluated: dict = dataclasses.field(default_factory=dict, repr=False)

  frames_per_segment = 1  # one forward pass per segment
  seconds_per_segment = 1.0

  @classmethod
  def build(cls, modality: str, *, max_segments: int | None = None,
            seed: int = 0) -> "StreamWorkload":
    if modality == "audio":
      from oneadapt_jax import speech

      waves, _ = speech.stream(AUDIO_SEGMENTS, seed=seed)
      segments = [np.asarray(w) for w in waves][:max_segments]
      clip = f"espeak-ng held-out voices (seed {seed})"
    elif modality == "lidar":
      segments = [t.cloud for t in lidar.split()[1]][:max_segments]
      clip = "autzen_trim.laz held-out tiles"
    else:
      raise ValueError(f"unknown modality {modality!r}; available: {MODALITIES}")
    if not segments:
      raise ValueError(f"the {modality} stream has no segments to adapt over")
    workload = cls(modality, clip, segments, load_model(modality), [])
    workload.references = [np.asarray(workload.run(workload.raw(i)))
                           for i in range(len(segments))]
    return workload

  @property
  def task(self) -> str:
    return TASKS[self.modality]

  @property
  def spec(self) -> Spec:
    return SPECS[self.modality]

  @functools.cached_property
  def members(self) -> dict[str, knobs.Knob]:
    return audio_members() if self.modality == "audio" else lidar_members()

  @property
  def config_type(self):
    return CONFIGS[self.modality]

  @property
  def knob_fields(self) -> tuple[str, ...]:
    return self.config_type._fields

  @property
  def best(self):
    return self.config_type(**{name: float(k.values[-1]) for name, k in self.members.items()})

  def raw(self, index: int):
    """Segment `index` as the knobs take it (audio `[T]`, or a `knobs.PointCloud`)."""
    return jax.tree.map(jnp.asarray, self.segments[index])

  @functools.cached_property
  def _jitted(self):
    return jax.jit(lambda x: self.model(x))

  def run(self, data):
    return self._jitted(data)

  def grid(self, *, stride: int = 1) -> list:
    """Every joint configuration of the knobs' ladders (`stride`: every so many rungs, the
    best kept)."""
    ladders = [tuple(float(v) for v in k.values[::-1][::stride][::-1])
               for k in self.members.values()]
    return [self.config_type(*combo) for combo in itertools.product(*ladders)]

  def record(self, method: str, segment: int, config, outcome: Outcome, **costs) -> StreamRecord:
    return StreamRecord(method, segment, self.modality, dict(config._asdict()), outcome.accuracy,
                        outcome.bytes, outcome.frames_sent, **costs)

  def send(self, index: int, config) -> tuple:
    """`(what the server receives of segment `index` at `config`, bytes sent)`: the real sender."""
    send = send_audio if self.modality == "audio" else send_points
    shown, num_bytes = send(self.segments[index], config)
    return jax.tree.map(jnp.asarray, shown), num_bytes

  def observe(self, index: int, config) -> tuple[jax.Array, Outcome]:
    """`(model outputs, outcome)` of one segment sent at one configuration; the outcome is
    memoised for `evaluate`."""
    config = self.config_type(*config)
    shown, num_bytes = self.send(index, config)
    outputs = self.run(shown)
    accuracy = self.spec.metric(np.asarray(outputs), self.references[index])
    self._evaluated[(index, config)] = Outcome(accuracy, num_bytes, 1)
    return outputs, self._evaluated[(index, config)]

  def evaluate(self, index: int, config) -> Outcome:
    """Real accuracy and bytes of one segment sent at one configuration (computed once)."""
    key = (index, self.config_type(*config))
    if key not in self._evaluated:
      self.observe(index, config)
    return self._evaluated[key]

  def best_bytes(self, index: int) -> int:
    return self.evaluate(index, self.best).bytes


def proxy_check(workload: StreamWorkload, *, configs=None) -> dict:
  """How well the proxy tracks the metric: over every segment and grid configuration, the proxy
  on what the real sender delivered against the real metric; Spearman's rho pooled, and the
  mean of the per-segment rhos (segments where the metric varies)."""
  from scipy import stats

  configs = workload.grid() if configs is None else configs
  proxy = jax.jit(workload.spec.proxy)
  pooled, per_segment = ([], []), []
  for i in range(len(workload.segments)):
    values, accuracies = [], []
    for config in configs:
      outputs, outcome = workload.observe(i, config)  # one send, one forward pass
      values.append(float(proxy(outputs)))
      accuracies.append(outcome.accuracy)
    pooled[0].extend(values)
    pooled[1].extend(accuracies)
    if np.ptp(accuracies) > 0:
      per_segment.append(stats.spearmanr(values, accuracies).statistic)
  return {"modality": workload.modality, "pairs": len(pooled[0]),
          "spearman_pooled": float(stats.spearmanr(*pooled).statistic),
          "spearman_per_segment_mean": float(np.mean(per_segment)) if per_segment else None,
          "segments_with_varying_metric": len(per_segment)}
