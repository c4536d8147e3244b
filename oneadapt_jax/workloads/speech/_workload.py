"""Text from speech: a CTC recogniser on espeak-ng sentences in held-out voices, sent as Opus.

Segments are 4 s of 16 kHz speech, one spoken command sentence each
(`oneadapt_jax.sentences.stream`), the noise drifting from 30 dB to 0 dB SNR and back. Knobs, in
the sender's order: `chunk_drop` (silence suppression: 400-ms chunks quieter than a threshold
times the loudest are not sent) -> `audio_bitrate` (the Opus bitrate). The real sender (`send`):
the chunks kept by the knob's own rule (`knobs.chunks_sent`) are coded with libopus at the
bitrate (`oneadapt_jax.opus`), the receiver plays silence for the chunks not sent; bytes: the
Opus packets of the chunks sent. The knob chain's cost is the product of the two (bytes at the
bitrate times the share of chunks sent). Model: `models.SpeechRecognizer`, trained here.
Proxy: the confidence of the decoded text (`proxy`); metric: word accuracy `1 - WER`, floored at
0, against the transcript recognised on the raw segment (`metric`), and `truth_metric` against
the words spoken.
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
from oneadapt_jax import metrics, opus, sentences
from oneadapt_jax.core import Config, SentWorkload

CHUNKS = 10  # chunk_drop's chunks per 4-s segment: 400 ms, 20 Opus packets each
SEGMENTS = 30


def knob_chain() -> knobs.Knob:
  """chunk_drop -> audio_bitrate; cost: bytes, `seconds * bitrate / 8 * chunks sent / chunks`."""
  members = {"chunk_drop": knobs.chunk_drop(chunks=CHUNKS), "audio_bitrate": knobs.audio_bitrate()}
  chain = knobs.chain(**{k: knobs.scale_cost(m, 0.0, unit="bytes") for k, m in members.items()})

  def cost(setting, wave):
    sent = members["chunk_drop"].cost(setting["chunk_drop"], wave) / CHUNKS
    return members["audio_bitrate"].cost(setting["audio_bitrate"], wave) * sent

  return chain._replace(cost=jax.jit(cost), unit="bytes")


def send(wave: np.ndarray, config: Config, *, chunks: int = CHUNKS) -> tuple[np.ndarray, int]:
  """`(what the receiver plays, bytes of the Opus packets sent)` of one segment."""
  wave = np.asarray(wave, np.float32)
  ids = knobs.chunk_ids(len(wave), chunks)
  rms = np.sqrt(np.array([np.mean(wave[ids == c] ** 2) for c in range(chunks)]) + 1e-12)
  sent = np.asarray(knobs.chunks_sent(rms / rms.max(), config["chunk_drop"]))
  coded = opus.encode(wave * sent[ids], config["audio_bitrate"])
  num_bytes = int(coded.packet_bytes[sent[packet_chunks(len(coded.packet_bytes), ids)]].sum())
  return coded.audio * sent[ids], num_bytes


def packet_chunks(num_packets: int, sample_chunks: np.ndarray) -> np.ndarray:
  """The chunk each Opus packet belongs to: packet `p` carries samples `[p, p + 1) * PACKET`,
  so it is the chunk of its first sample; the last packet flushes the encoder and counts with the
  last chunk. `sample_chunks` is `knobs.chunk_ids` of the segment's samples."""
  first = np.minimum(np.arange(num_packets) * opus.PACKET, len(sample_chunks) - 1)
  return sample_chunks[first]


def load_model() -> models.SpeechRecognizer:
  """The trained recogniser, from the verified cache (`make assets` trains it)."""
  return trained.restore("asr", models.SpeechRecognizer(len(sentences.VOCABULARY),
                                                        rngs=nnx.Rngs(0)))


def proxy(logits: jax.Array) -> jax.Array:
  """The confidence of the decoded text: over the frames where a word is the best token, the
  mean probability of that word; the fewer and the less sure the words, the lower."""
  p = jax.nn.softmax(logits, axis=-1)
  word = jnp.max(p[..., 1:], axis=-1)
  speaking = jax.lax.stop_gradient((word > p[..., 0]).astype(p.dtype))
  return jnp.sum(word * speaking) / (jnp.sum(speaking) + 1.0)


def transcript(logits) -> list[str]:
  """The words CTC's best path reads from `[frames, tokens]` logits."""
  return sentences.words_of(models.ctc_greedy(logits))


def metric(logits: np.ndarray, reference: np.ndarray) -> float:
  """Word accuracy, `max(0, 1 - WER)`, of the transcript against the raw segment's transcript."""
  return max(0.0, 1.0 - metrics.word_error_rate(transcript(logits), transcript(reference)))


def truth_metric(logits: np.ndarray, words: list[str]) -> float:
  """Word accuracy against the words spoken."""
  return max(0.0, 1.0 - metrics.word_error_rate(transcript(logits), words))


@dataclasses.dataclass(eq=False)
class SpeechWorkload(SentWorkload):
  """Speech recognition of command sentences, sent as Opus."""

  kind = "speech"
  task = "text from speech"
  words: list = dataclasses.field(default_factory=list, repr=False)

  def send(self, index: int, config: Config):
    return send(np.asarray(self.segments[index]), config)


def build(*, max_segments: int | None = None, seed: int = 0) -> SpeechWorkload:
  """The speech workload: `SEGMENTS` sentences in held-out voices (`seed` picks them and the
  noise)."""
  waves, words = sentences.stream(SEGMENTS, seed=seed)
  return SpeechWorkload(f"espeak-ng sentences, held-out voices (seed {seed})",
                        [np.asarray(w) for w in waves][:max_segments], knob_chain(), load_model(),
                        proxy, metric, words=words[:max_segments])
