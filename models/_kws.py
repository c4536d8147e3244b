"""A small keyword-spotting network, trained in this repository on espeak-ng speech.

`KeywordSpotter(audio)` takes `float32 [..., 16000]` (1 s at 16 kHz, in `[-1, 1]`) and returns
word logits `[..., num_words]`. The front end is a log-mel spectrogram written in JAX (25 ms
Hann windows every 10 ms, 40 mel bands up to 8 kHz, per-band mean removed over the clip, so
the gain of the recording does not matter), differentiable all the way back to the samples;
three 3x3 convolutions with max pooling and a global average pool make the classifier.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
MELS = 40


def _hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


@functools.cache
def mel_filterbank(rate: int = RATE, fft: int = FFT, mels: int = MELS) -> np.ndarray:
  """HTK-style triangular mel filters `[fft // 2 + 1, mels]` up to `rate / 2`."""
  edges_mel = np.linspace(0.0, _hz_to_mel(rate / 2), mels + 2)
  edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
  freqs = np.fft.rfftfreq(fft, 1.0 / rate)
  lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  rising = (freqs - lower) / (centre - lower)
  falling = (upper - freqs) / (upper - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


def log_mel(audio: jax.Array) -> jax.Array:
  """`[..., T]` audio -> `[..., frames, MELS]` log-mel energies, per-band mean removed."""
  num = audio.shape[-1]
  frames = 1 + (num - WINDOW) // HOP
  index = np.arange(frames)[:, None] * HOP + np.arange(WINDOW)[None, :]
  framed = audio[..., index]
  window = jnp.asarray(np.hanning(WINDOW), audio.dtype).reshape((1,) * (framed.ndim - 1) + (-1,))
  spectrum = jnp.fft.rfft(framed * window, n=FFT, axis=-1)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  energy = jnp.log(power @ jnp.asarray(mel_filterbank(), audio.dtype) + 1e-6)
  return energy - jnp.mean(energy, axis=-2, keepdims=True)


class KeywordSpotter(nnx.Module):
  """Log-mel front end and a 3-layer CNN; `__call__` returns word logits."""

  def __init__(self, num_words: int, *, channels: tuple[int, int, int] = (16, 32, 64),
               rngs: nnx.Rngs):
    c1, c2, c3 = channels
    self.conv1 = nnx.Conv(1, c1, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(c1, c2, (3, 3), rngs=rngs)
    self.conv3 = nnx.Conv(c2, c3, (3, 3), rngs=rngs)
    self.head = nnx.Linear(c3, num_words, rngs=rngs)

  def __call__(self, audio: jax.Array) -> jax.Array:
    batch = audio.shape[:-1]
    x = log_mel(audio.reshape((-1, audio.shape[-1])))[..., None] / 4.0
    x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), (2, 2))
    x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), (2, 2))
    x = nnx.relu(self.conv3(x))
    return self.head(jnp.mean(x, axis=(-3, -2))).reshape(batch + (-1,))
