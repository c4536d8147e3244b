"""SpeechRecognizer: a small CTC speech recogniser of command sentences, trained here.

`SpeechRecognizer(audio)` takes `float32 [..., T]` (16 kHz, in `[-1, 1]`) and returns per-frame
token logits `[..., frames, vocabulary + 1]` every 20 ms, token 0 being CTC's blank. The front
end is the keyword spotter's log-mel spectrogram (`models._kws.log_mel`: 25 ms windows every
10 ms, 40 mel bands, each band's mean over the clip removed), differentiable back to the
samples. A 5-tap convolution with a stride of 2 makes 20-ms frames; four residual 3-tap
convolutions with dilations 1, 2, 4 and 8 give each frame about 0.7 s of context (a word and its
neighbours); a 1x1 convolution gives the token logits. Words are the tokens (no characters): the
vocabulary is closed, so the recogniser learns to find each word and keep their order.

`greedy(logits)` is CTC's best-path decoding: the most likely token of each frame, repeats
merged, blanks dropped.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from models._kws import log_mel


class SpeechRecognizer(nnx.Module):
  def __init__(self, vocabulary: int, *, width: int = 96, rngs: nnx.Rngs):
    self.stem = nnx.Conv(40, width, (5,), strides=(2,), padding="SAME", rngs=rngs)
    self.blocks = nnx.List([nnx.Conv(width, width, (3,), kernel_dilation=(d,), padding="SAME",
                                     rngs=rngs) for d in (1, 2, 4, 8)])
    self.head = nnx.Conv(width, vocabulary + 1, (1,), rngs=rngs)

  def __call__(self, audio: jax.Array) -> jax.Array:
    lead = audio.shape[:-1]
    x = log_mel(audio.reshape((-1, audio.shape[-1]))) / 4.0
    x = nnx.relu(self.stem(x))
    for block in self.blocks:
      x = x + nnx.relu(block(x))
    logits = self.head(x)
    return logits.reshape(lead + logits.shape[-2:])


def greedy(logits) -> list[int]:
  """CTC best-path decoding of `[frames, tokens]` logits: token ids, blanks (0) dropped."""
  best = np.argmax(np.asarray(logits), axis=-1)
  keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != 0)
  return [int(t) for t in best[keep]]
