"""Audio: keyword spotting on held-out espeak-ng voices whose noise drifts.

Segments are 1 s of 16 kHz speech (`oneadapt_jax.speech.stream`). Knobs, in the sender's order:
`sample_rate` -> `bit_depth` -> `chunk_drop`. The real sender (`send`): `scipy.signal.
resample_poly` down to the rate and back up to 16 kHz (a polyphase FIR, not the knob's FFT
mask), signed PCM at the bit depth, chunks under the RMS threshold replaced by silence
(`knobs.chunks_sent`, the knob's own rule). Bytes: the PCM sent, `ceil(samples * bits / 8)` per
chunk sent. Model: `models.KeywordSpotter`, trained here. Proxy: the softmax probability of the
recognised word (`proxies.keyword`); metric: 1 if the recognised word is the one recognised on
the raw segment (`metrics.keyword`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from flax import nnx

import knobs
import models
from models import trained
from oneadapt_jax import metrics, proxies
from oneadapt_jax.core import Config, SentWorkload

CHUNKS = 10  # chunk_drop's chunks per 1-s segment
SEGMENTS = 24  # the stream's length (max_segments takes its first ones)
SOURCE_RATE = 16000.0


def knob_chain() -> knobs.Knob:
  """The chain sample_rate -> bit_depth -> chunk_drop; cost: bytes of PCM sent,
  `samples * bits / 8 * chunks sent / chunks`, each factor its member's differentiable cost."""
  members = {"sample_rate": knobs.sample_rate(), "bit_depth": knobs.bit_depth(),
             "chunk_drop": knobs.chunk_drop(chunks=CHUNKS)}
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


def send(wave: np.ndarray, config: Config, *, source_rate: float = SOURCE_RATE,
         chunks: int = CHUNKS) -> tuple[np.ndarray, int]:
  """`(what the receiver plays at the source rate, bytes of PCM sent)`."""
  import scipy.signal

  num = len(wave)
  rate, bits = int(config["sample_rate"]), int(config["bit_depth"])
  ratio = math.gcd(rate, int(source_rate))
  up, down = rate // ratio, int(source_rate) // ratio
  low = scipy.signal.resample_poly(wave.astype(np.float64), up, down)
  scale = 2.0 ** (bits - 1)
  pcm = np.clip(np.round(low * scale), -scale, scale - 1)
  ids = knobs.chunk_ids(len(pcm), chunks)
  rms = np.sqrt(np.array([np.mean((pcm[ids == c] / scale) ** 2) for c in range(chunks)]) + 1e-12)
  sent = knobs.chunks_sent(rms / rms.max(), config["chunk_drop"])
  pcm = pcm * sent[ids]
  played = scipy.signal.resample_poly(pcm / scale, down, up)[:num]
  played = np.pad(played, (0, num - len(played)))
  num_bytes = sum(math.ceil(np.sum(ids == c) * bits / 8) for c in range(chunks) if sent[c])
  return np.clip(played, -1, 1).astype(np.float32), int(num_bytes)


def load_model() -> nnx.Module:
  """The trained keyword spotter, from the verified cache (`make assets` trains it)."""
  from oneadapt_jax import speech

  return trained.restore("kws", models.KeywordSpotter(len(speech.WORDS), rngs=nnx.Rngs(0)))


@dataclasses.dataclass(eq=False)
class AudioWorkload(SentWorkload):
  """Keyword spotting on a speech stream, sent as PCM."""

  kind = "audio"
  task = "keyword spotting"

  def send(self, index: int, config: Config):
    return send(np.asarray(self.segments[index]), config)


def build(*, max_segments: int | None = None, seed: int = 0) -> AudioWorkload:
  """The audio workload: `SEGMENTS` seconds of held-out voices (`seed` picks words and noise)."""
  from oneadapt_jax import speech

  waves, _ = speech.stream(SEGMENTS, seed=seed)
  return AudioWorkload(f"espeak-ng held-out voices (seed {seed})",
                       [np.asarray(w) for w in waves][:max_segments], knob_chain(), load_model(),
                       proxies.keyword, metrics.keyword)
