"""A tensorflow-datasets builder of the espeak-ng keyword utterances (no TensorFlow needed).

Like `oneadapt_jax.tfds_video`: written in `array_record` format, read with `tfds.data_source`.
Two splits, `train` (`speech.TRAIN_VOICES`) and `held_out` (`speech.HELD_OUT_VOICES`); each
example is one clean utterance (noise is added at use, `speech.noisy`):

  audio: int16 [16000] (1 s at 16 kHz PCM)    word: class label (`speech.WORDS`)
  voice: str    speed: int32 (words per minute)    pitch: int32

Example:
  >>> from oneadapt_jax import tfds_speech                      # doctest: +SKIP
  >>> source = tfds_speech.data_source("held_out")              # doctest: +SKIP
  >>> source[0]["audio"].shape                                  # doctest: +SKIP
  (16000,)
"""

from __future__ import annotations

import itertools
import pathlib

import numpy as np
import tensorflow_datasets as tfds

import models
from oneadapt_jax import speech

SPLITS = {"train": speech.TRAIN_VOICES, "held_out": speech.HELD_OUT_VOICES}


class SpokenKeywords(tfds.core.GeneratorBasedBuilder):
  """Twelve keywords spoken by espeak-ng voices at three speeds and two pitches."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "12 words x 20 voices x 3 speeds x 2 pitches, 16 kHz."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(speech.RATE,), dtype=np.int16),
            "word": tfds.features.ClassLabel(names=list(speech.WORDS)),
            "voice": tfds.features.Text(),
            "speed": tfds.features.Scalar(dtype=np.int32),
            "pitch": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage="https://github.com/espeak-ng/espeak-ng",
        license="synthesised with espeak-ng (GPL-3.0-or-later); the recordings carry no "
                "further terms",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # synthesised here, nothing is downloaded
    return {name: self._generate_examples(voices) for name, voices in SPLITS.items()}

  def _generate_examples(self, voices):
    audio, words, spoken_by = speech.utterances(voices)
    combos = itertools.product(range(len(speech.WORDS)), voices, speech.SPEEDS, speech.PITCHES)
    for i, (_, voice, speed, pitch) in enumerate(combos):  # `utterances`' order
      assert spoken_by[i] == voice
      yield f"{voice}-{speed}-{pitch}-{speech.WORDS[words[i]]}", {
          "audio": np.round(audio[i] * 32767).astype(np.int16), "word": int(words[i]),
          "voice": voice, "speed": speed, "pitch": pitch}


def data_dir() -> pathlib.Path:
  return models.cache_dir() / "tfds"


def prepare() -> SpokenKeywords:
  """Builds the dataset once (a no-op when it exists)."""
  builder = SpokenKeywords(data_dir=str(data_dir()), file_format="array_record")
  builder.download_and_prepare()
  return builder


def data_source(split: str):
  """Random-access source of one split's utterances (dicts of NumPy arrays)."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; the dataset has {sorted(SPLITS)}")
  return prepare().as_data_source(split=split)
