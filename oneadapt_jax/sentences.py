"""Continuous speech: espeak-ng sentences of spoken commands, for text from speech.

A sentence is one or two clauses of a small command grammar ("go forward four, then turn left",
"call five two nine", "set the volume to seven") over `VOCABULARY` (40 words: the ten digits and
30 command words), so a recogniser must find several words, their order and the pauses between
them. espeak-ng (the Debian package `make assets` installs, as for `oneadapt_jax.speech`) speaks
each sentence in one voice at one speed and pitch; commas become pauses. The audio is resampled
to 16 kHz and placed at a random offset in a `SECONDS`-second segment.

`utterances(voices, count, seed)` synthesises (and caches) clean sentences; `stream(...)` is the
speech workload's stream: held-out voices (`speech.HELD_OUT_VOICES`), the noise drifting from a
quiet room to a loud street and back, as in the keyword stream.
"""

from __future__ import annotations

import numpy as np

from oneadapt_jax import speech

RATE = speech.RATE
SECONDS = 4.0
SAMPLES = int(RATE * SECONDS)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("go", "stop", "turn", "left", "right", "up", "down", "on", "off", "open", "close",
            "call", "set", "play", "move", "back", "forward", "light", "door", "volume", "channel",
            "room", "number", "to", "the", "then", "please", "and", "yes", "no")
#: The recogniser's words; token `i + 1` is `VOCABULARY[i]` (0 is CTC's blank).
VOCABULARY = DIGITS + COMMANDS
SPEEDS = (130, 160, 190)  # words per minute


def _clause(rng: np.random.Generator) -> list[str]:
  def digit():
    return str(rng.choice(DIGITS))

  def pick(*words):
    return str(rng.choice(words))

  kind = int(rng.integers(8))
  if kind == 0:
    return ["turn", "the", "light", pick("on", "off")]
  if kind == 1:
    return ["turn", pick("left", "right")]
  if kind == 2:
    return ["set", "the", pick("volume", "channel"), "to", digit()]
  if kind == 3:
    return ["call"] + [digit() for _ in range(int(rng.integers(2, 5)))]
  if kind == 4:
    return [pick("open", "close"), "the", "door"] + (["to", "room", digit()] if rng.uniform() < 0.5
                                                     else [])
  if kind == 5:
    return [pick("go", "move"), pick("forward", "back", "up", "down"), digit()]
  if kind == 6:
    return ["play", pick("channel", "number"), digit(), digit()]
  return [pick("yes", "no", "stop", "please")]


def sentence(rng: np.random.Generator) -> tuple[str, list[str]]:
  """`(text to speak, its words)`: one or two clauses; commas (pauses) join them."""
  clauses = [_clause(rng)]
  if rng.uniform() < 0.7:
    joint = str(rng.choice(["then", "and", ""]))
    clauses.append(([joint] if joint else []) + _clause(rng))
  if rng.uniform() < 0.2:
    clauses[0] = ["please"] + clauses[0]
  words = [w for c in clauses for w in c]
  return ", ".join(" ".join(c) for c in clauses), words


def tokens(words) -> np.ndarray:
  """Words -> token ids (`VOCABULARY` index + 1)."""
  index = {w: i + 1 for i, w in enumerate(VOCABULARY)}
  unknown = [w for w in words if w not in index]
  if unknown:
    raise ValueError(f"words not in the vocabulary: {unknown}; it has {', '.join(VOCABULARY)}")
  return np.array([index[w] for w in words], np.int32)


def words_of(token_ids) -> list[str]:
  """Token ids (blank 0 left out) -> words."""
  return [VOCABULARY[int(t) - 1] for t in token_ids if int(t) > 0]


def synthesise(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
  """One sentence as float32 at `RATE`, silence trimmed, peak-normalised to 0.5."""
  audio = speech.speak(text, voice, speed, pitch)
  return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def utterances(voices, count: int, *, seed: int, progress: bool = False):
  """`count` sentences, each in a random voice of `voices`, speed and pitch, that fit a segment:
  `(audio float32 [count, SAMPLES], words list of lists)`. The sentence starts at a random offset.

  Synthesised once and cached (`<cache>/speech/sentences-*.npz`, keyed by the arguments, the
  grammar's vocabulary and espeak-ng's version).
  """
  def build():
    rng = np.random.default_rng(seed)
    # Drawn up front so the result does not depend on the threads' order; a quarter more than
    # needed, as a long sentence at a slow speed may not fit.
    draws = [(*sentence(rng), str(rng.choice(voices)), int(rng.choice(SPEEDS)),
              int(rng.choice(speech.PITCHES)), float(rng.uniform()))
             for _ in range(count * 5 // 4 + 8)]
    spoken = speech.synthesise_all(synthesise, [(d[0], *d[2:5]) for d in draws],
                                   desc="espeak-ng sentences", progress=progress)
    audio, words = [], []
    for draw, clip in zip(draws, spoken):
      if len(clip) > SAMPLES - RATE // 10 or len(audio) == count:
        continue
      start = int(draw[5] * (SAMPLES - len(clip)))
      segment = np.zeros(SAMPLES, np.float32)
      segment[start:start + len(clip)] = clip
      audio.append(segment)
      words.append(draw[1])
    if len(audio) < count:
      raise speech.SpeechError(f"only {len(audio)} of {count} sentences fit {SECONDS} s")
    return {"audio": np.stack(audio), "words": np.array([" ".join(w) for w in words])}

  arrays = speech.cached("sentences", [speech._version(), VOCABULARY, list(voices), count, seed,
                                       SPEEDS, speech.PITCHES, SAMPLES, 2], build)
  return arrays["audio"], [str(s).split() for s in arrays["words"]]


def stream(num_segments: int = 30, *, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
  """The speech workload's stream: `(segments float32 [n, SAMPLES], their true words)`.

  Held-out voices speak one sentence a segment; the SNR drifts from 30 dB to 0 dB and back.
  """
  if num_segments < 1:
    raise ValueError(f"num_segments must be >= 1, got {num_segments}")
  audio, words = utterances(speech.HELD_OUT_VOICES, num_segments, seed=1000 + seed)
  rng = np.random.default_rng(seed)
  snr = 15 + 15 * np.cos(np.linspace(0, 2 * np.pi, num_segments))
  return speech.noisy(audio, snr, rng), words
