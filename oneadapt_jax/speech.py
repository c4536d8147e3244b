"""Real speech, synthesised offline with espeak-ng: a keyword vocabulary across voices and speeds.

Each utterance is one word spoken by espeak-ng (the Debian package `espeak-ng`, which `make
assets` installs), resampled from espeak's 22 050 Hz to 16 kHz and placed in a 1-second clip,
then mixed with noise at a chosen signal-to-noise ratio. Voices are split: the keyword model
trains on `TRAIN_VOICES` and is measured, and adapted over, on `HELD_OUT_VOICES`.

`utterances(voices)` synthesises (and caches) the clean clips; `noisy(...)` adds noise;
`stream(...)` is the adaptation workload's audio stream: one word per 1-s segment, held-out
voices, the noise level drifting over time, so that the best sample rate and bit depth change.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import itertools
import json
import shutil
import subprocess
import wave
from collections.abc import Callable

import numpy as np

import models

RATE = 16000
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "yes",
         "no")
# espeak-ng voice+variant: accents (en-us, en-gb, en-gb-scotland, en-029, en-gb-x-rp) and
# speakers (the m*/f* variants change formants, pitch range and breathiness).
TRAIN_VOICES = ("en-us+m1", "en-us+f1", "en-us+m3", "en-us+f3", "en+m2", "en+f2", "en+m4",
                "en-gb-scotland+m5", "en-gb-scotland+f4", "en-029+m6", "en-gb-x-rp+m7",
                "en-gb-x-rp+f5", "en-us+klatt", "en+croak")
HELD_OUT_VOICES = ("en-us+m2", "en-us+f2", "en-gb+m3", "en-029+f1", "en-gb-scotland+m1",
                   "en-gb-x-rp+m4")
SPEEDS = (120, 160, 200)  # words per minute
PITCHES = (35, 60)
INSTALL_HINT = ("espeak-ng is not installed; run `make assets` (it installs the Debian package) "
                "or `apt-get install espeak-ng`")


class SpeechError(FileNotFoundError):
  """espeak-ng is missing (or failed)."""


def espeak() -> str:
  path = shutil.which("espeak-ng")
  if path is None:
    raise SpeechError(INSTALL_HINT)
  return path


def _version() -> str:
  return subprocess.run([espeak(), "--version"], check=False, capture_output=True, text=True).stdout.strip()


def speak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
  """`text` spoken by espeak-ng, resampled to `RATE`, leading and trailing silence trimmed
  (float64)."""
  import scipy.signal

  result = subprocess.run([espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch),
                           "--stdout", text], check=False, capture_output=True)
  if result.returncode != 0 or not result.stdout:
    raise SpeechError(f"espeak-ng failed on {text!r} with voice {voice}: "
                      f"{result.stderr.decode(errors='replace').strip()}")
  with wave.open(io.BytesIO(result.stdout)) as w:
    source_rate = w.getframerate()
    pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32768
  audio = scipy.signal.resample_poly(pcm, RATE, source_rate)
  loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
  return audio[loud[0]:loud[-1] + 1]


def synthesise(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
  """One word as `float32 [RATE]` (1 s, the word centred), peak-normalised to 0.5."""
  audio = speak(word, voice, speed, pitch)[:RATE]  # keep at most 1 s
  clip = np.zeros(RATE)
  start = (RATE - len(audio)) // 2
  clip[start:start + len(audio)] = audio
  return (0.5 * clip / np.abs(clip).max()).astype(np.float32)


def cached(name: str, key: list, build: Callable[[], dict[str, np.ndarray]]) -> dict:
  """Arrays synthesised once: `<cache>/speech/NAME-<hash of key>.npz` when it is there, else
  `build()`'s, written atomically (an interrupted write leaves no file). `key` (JSON) names
  everything the arrays depend on; espeak-ng's version goes in it."""
  digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
  path = models.cache_dir() / "speech" / f"{name}-{digest}.npz"
  if path.exists():
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  arrays = build()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, **arrays)
  tmp.replace(path)
  return arrays


def synthesise_all(fn: Callable, jobs: list, *, desc: str, progress: bool = False) -> list:
  """`fn(*job)` for every job, four espeak-ng processes at a time, in the jobs' order."""
  from tqdm.auto import tqdm

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    return list(tqdm(pool.map(lambda job: fn(*job), jobs), total=len(jobs), desc=desc,
                     disable=not progress))


def utterances(voices, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray, list]:
  """Every word x voice x speed x pitch: `(audio [n, RATE], word index [n], voice of each)`.

  Synthesised once and cached (`<cache>/speech/*.npz`, keyed by the list and espeak-ng's version).
  """
  combos = list(itertools.product(range(len(WORDS)), voices, SPEEDS, PITCHES))

  def build():
    audio = synthesise_all(synthesise, [(WORDS[w], *rest) for w, *rest in combos],
                           desc="espeak-ng", progress=progress)
    return {"audio": np.stack(audio), "word": np.array([c[0] for c in combos], np.int32),
            "voice": np.array([c[1] for c in combos])}

  arrays = cached("utterances", [_version(), WORDS, list(voices), SPEEDS, PITCHES, RATE], build)
  return arrays["audio"], arrays["word"], list(arrays["voice"])


def noise(rng: np.random.Generator, num: int, colour: str) -> np.ndarray:
  """Unit-RMS noise: `white`, or `brown` (integrated white, like wind or traffic rumble)."""
  n = rng.normal(size=num)
  if colour == "brown":
    n = np.cumsum(n)
    n -= np.linspace(n[0], n[-1], num)  # no drift
  return n / np.sqrt(np.mean(n**2))


def noisy(audio: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Each clip mixed with white or brown noise at its SNR (dB, over the clip), within [-1, 1]."""
  out = np.empty_like(audio)
  for i, (clip, snr) in enumerate(zip(audio, np.broadcast_to(snr_db, len(audio)))):
    signal_rms = np.sqrt(np.mean(clip**2))
    n = noise(rng, clip.shape[-1], rng.choice(["white", "brown"]))
    mixed = clip + n * signal_rms * 10 ** (-snr / 20)
    out[i] = mixed / max(1.0, np.abs(mixed).max())
  return out.astype(np.float32)


def stream(num_segments: int = 24, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The audio stream the adaptation runs over: `(segments [n, RATE] float32, words [n])`.

  Held-out voices speak random words; the SNR drifts from 30 dB (quiet room) to 0 dB (loud
  street) and back, so what a segment needs changes over the stream.
  """
  if num_segments < 1:
    raise ValueError(f"num_segments must be >= 1, got {num_segments}")
  audio, word, _ = utterances(HELD_OUT_VOICES)
  rng = np.random.default_rng(seed)
  picks = rng.choice(len(audio), num_segments, replace=False)
  phase = np.linspace(0, 2 * np.pi, num_segments)
  snr = 15 + 15 * np.cos(phase)  # 30 dB -> 0 dB -> 30 dB
  return noisy(audio[picks], snr, rng), word[picks]
