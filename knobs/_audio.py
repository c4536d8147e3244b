"""Audio knobs: sample rate, bit depth and silence-suppressing chunk dropping.

Audio is `float32 [..., T]` in `[-1, 1]` at the source rate (PCM scaled by `2 ** (bits - 1)`).
Like the video knobs, each forward pass is the real, hard operation and each backward pass
differentiates a soft relaxation of it (straight-through):

- `sample_rate`: sending at rate `r` and resampling back is an ideal low-pass at `r / 2` (what
  FFT resampling, `scipy.signal.resample`, does). Forward: that brick-wall mask in the rFFT
  domain. Backward: a sigmoid roll-off around the cutoff, so the gradient says how much of the
  spectrum just above the cutoff the model would miss.
- `bit_depth`: signed PCM at `b` bits, `round(x 2^(b-1)) / 2^(b-1)`. Backward: identity in the
  samples, and the rounding error scaled with the step `2^(1-b)` in the setting (quantization
  noise is proportional to the step).
- `chunk_drop`: the segment is cut into `chunks`; a chunk whose RMS is below `threshold` times
  the loudest chunk's is not sent (the receiver plays silence), as voice-activity detection does
  in VoIP. Backward: a sigmoid in the RMS ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _base


def check_audio(wave, *, name: str = "audio") -> None:
  """Raises a `ValueError` naming the problem if `wave` is not audio `float [..., T]` in `[-1, 1]`.

  Values are checked only on concrete arrays (a traced value cannot raise).
  """
  if not hasattr(wave, "shape") or not hasattr(wave, "dtype"):
    raise ValueError(f"{name} must be an array [..., T], got {type(wave).__name__}")
  shape = tuple(wave.shape)
  if len(shape) < 1 or shape[-1] == 0:
    raise ValueError(f"{name} must have a non-empty time axis [..., T], got shape {shape}")
  if not jnp.issubdtype(wave.dtype, jnp.floating):
    raise ValueError(f"{name} must be floating point in [-1, 1], got dtype {wave.dtype} "
                     f"(for int16 PCM use pcm.astype(np.float32) / 32768)")
  if _base._is_concrete(wave) and not _base._VALUES_CHECKED.get():
    values = np.asarray(wave)
    if not np.all(np.isfinite(values)):
      bad = np.argwhere(~np.isfinite(values))[0]
      raise ValueError(f"{name} contains NaN or infinite values (first at index {tuple(bad)})")
    if values.size and np.abs(values).max() > 1 + 1e-3:
      raise ValueError(f"{name} must be in [-1, 1], got peak {np.abs(values).max():.4g}")


def _batch_size(wave: jax.Array) -> int:
  return int(np.prod(wave.shape[:-1], dtype=np.int64))


# --------------------------------------------------------------------------- sample rate


def lowpass_mask(num: int, source_rate: float, rate: jax.Array, roll_off: float) -> tuple:
  """`(hard, soft)` rFFT masks of a send-at-`rate` resampling of `num` samples: the hard mask
  keeps the bins below `rate / 2` (every bin at the source rate); the soft one rolls off over
  `roll_off * source_rate / 2` Hz around the cutoff."""
  freqs = jnp.asarray(np.fft.rfftfreq(num, 1.0 / source_rate), rate.dtype)
  cutoff = rate / 2.0
  full = rate >= source_rate * (1 - 1e-6)
  hard = jnp.where(full, True, freqs < cutoff - 1e-3)
  soft = jax.nn.sigmoid((cutoff - freqs) / (roll_off * source_rate / 2.0))
  return hard, soft


def sample_rate(
    *,
    source_rate: float = 16000.0,
    rates: Sequence[float] = (1000.0, 2000.0, 4000.0, 8000.0, 16000.0),
    roll_off: float = 0.03,
    round_rule: str = "up",
) -> _base.Knob:
  """Sample-rate knob: the audio as it sounds after sending at a lower rate and resampling back.

  Cost: samples sent per call (unit ``"samples"``), `T * rate / source_rate` per clip.

  Example:
    >>> import jax.numpy as jnp, knobs, numpy as np
    >>> t = np.arange(1600) / 16000.0
    >>> tone = jnp.asarray(0.5 * np.sin(2 * np.pi * 3000 * t), jnp.float32)   # 3 kHz
    >>> knob = knobs.sample_rate()
    >>> float(jnp.abs(knob.apply(jnp.float32(0.5), tone)).max()) < 1e-3   # sent at 4 kHz
    True
    >>> float(knob.cost(jnp.float32(0.5), tone))
    400.0

  Args:
    source_rate: the rate of the incoming audio, in Hz.
    rates: the discrete sending rates in Hz, cheapest first, up to `source_rate`.
    roll_off: width of the backward pass's sigmoid, as a fraction of the source Nyquist band.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(rates, name="sample_rate")
  if values[0] <= 0 or values[-1] > source_rate * (1 + 1e-9) or values[-1] < values[0]:
    raise ValueError(f"sample_rate: rates must increase within (0, source_rate={source_rate}], "
                     f"got {tuple(rates)}")
  if not roll_off > 0:
    raise ValueError(f"sample_rate: roll_off must be > 0, got {roll_off}")

  def rate_of(setting, dtype):
    return _base.ladder_to_physical(values, _base.as_setting(setting, dtype))

  @jax.jit
  def apply(setting, wave):
    rate = rate_of(setting, wave.dtype)
    hard, soft = lowpass_mask(wave.shape[-1], source_rate, rate, roll_off)
    spectrum = jnp.fft.rfft(wave, axis=-1)
    mask = _base.straight_through(soft, hard).astype(spectrum.dtype)
    out = jnp.fft.irfft(spectrum * mask, n=wave.shape[-1], axis=-1)
    return out.astype(wave.dtype)

  @jax.jit
  def cost(setting, wave):
    rate = rate_of(setting, wave.dtype)
    return _batch_size(wave) * wave.shape[-1] * rate / source_rate

  return _base.ladder_knob(values, apply, cost, check=check_audio,
                           name="sample_rate", unit="samples", round_rule=round_rule)


# --------------------------------------------------------------------------- bit depth


def pcm_quantize(wave: jax.Array, bits: jax.Array) -> jax.Array:
  """Signed PCM at `bits` (continuous allowed): `clip(round(x 2^(b-1)), -2^(b-1), 2^(b-1) - 1)`
  scaled back to `[-1, 1]`. No gradient (see `bit_depth`)."""
  # On a rung the scale must be exactly 2^(b-1) (XLA's float32 exp2(15) is 32767.98), and a
  # rung's float32 interpolation lands a hair off the integer.
  whole = jnp.round(bits)
  exact = jnp.ldexp(jnp.ones_like(bits), (whole - 1.0).astype(jnp.int32))
  scale = jnp.where(jnp.abs(bits - whole) < 1e-3, exact, jnp.exp2(bits - 1.0))
  return jnp.clip(jnp.round(wave * scale), -scale, scale - 1.0) / scale


def bit_depth(
    *,
    bits: Sequence[float] = (4, 6, 8, 10, 12, 16),
    round_rule: str = "up",
) -> _base.Knob:
  """Bit-depth knob: signed PCM quantization with a straight-through rounding.

  Backward: identity in the samples; in the setting, the rounding error scales with the step
  `2^(1-b)`, so `d out / d b = -ln 2 * (rounding error)`.

  Cost: bits of the clip at the source rate (unit ``"bits"``), `T * b` per clip.

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> knob = knobs.bit_depth()
    >>> knob.apply(jnp.float32(0.0), jnp.asarray([0.1, -0.33, 0.9]))   # 4 bits: steps of 1/8
    Array([ 0.125, -0.375,  0.875], dtype=float32)

  Args:
    bits: the discrete bit depths, cheapest first (at least 2).
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(bits, name="bit_depth")
  if values[0] < 2 or values[-1] < values[0]:
    raise ValueError(f"bit_depth: bits must increase from at least 2, got {tuple(bits)}")

  def bits_of(setting, dtype):
    return _base.ladder_to_physical(values, _base.as_setting(setting, dtype))

  @jax.jit
  def apply(setting, wave):
    b = bits_of(setting, wave.dtype)
    error = jax.lax.stop_gradient(pcm_quantize(wave, b) - wave)
    step = jnp.exp2(1.0 - b)
    return wave + error * (step / jax.lax.stop_gradient(step))

  @jax.jit
  def cost(setting, wave):
    return _batch_size(wave) * wave.shape[-1] * bits_of(setting, wave.dtype)

  return _base.ladder_knob(values, apply, cost, check=check_audio,
                           name="bit_depth", unit="bits", round_rule=round_rule)


# --------------------------------------------------------------------------- chunk dropping


def chunk_ids(num: int, chunks: int) -> np.ndarray:
  """Which of `chunks` near-equal chunks each of `num` samples belongs to."""
  return (np.arange(num) * chunks) // num


def chunks_sent(levels, threshold):
  """The send rule of `chunk_drop`: a chunk is sent when its level (RMS relative to the loudest
  chunk) is at least `threshold`. Works on NumPy and JAX arrays alike; the knob's forward pass
  and the real sender both use it."""
  return levels >= threshold - 1e-6


def chunk_levels(wave: jax.Array, chunks: int) -> jax.Array:
  """`[..., chunks]` RMS of each chunk relative to the loudest chunk of the clip, in `[0, 1]`."""
  ids = jnp.asarray(chunk_ids(wave.shape[-1], chunks))
  onehot = jax.nn.one_hot(ids, chunks, dtype=wave.dtype)  # [T, C]
  counts = jnp.sum(onehot, axis=0)
  power = (wave * wave) @ onehot / counts
  rms = jnp.sqrt(power + 1e-12)
  return rms / jnp.max(rms, axis=-1, keepdims=True)


def chunk_drop(
    *,
    chunks: int = 10,
    thresholds: Sequence[float] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.0),
    temperature: float = 0.03,
    round_rule: str = "up",
) -> _base.Knob:
  """Chunk dropping: chunks quieter than `threshold` times the loudest are not sent (silence).

  Setting 1 is threshold 0: every chunk is sent. The hard decision `level >= threshold` is the
  forward pass; the backward pass differentiates `sigmoid((level - threshold) / temperature)`.

  Cost: chunks sent per call (unit ``"chunks"``).

  Example:
    >>> import jax.numpy as jnp, knobs
    >>> wave = jnp.concatenate([jnp.full(50, 0.5), jnp.full(50, 0.01)])   # loud, then quiet
    >>> knob = knobs.chunk_drop(chunks=2)
    >>> float(knob.cost(jnp.float32(0.0), wave)), float(knob.apply(jnp.float32(0.0), wave)[-1])
    (1.0, 0.0)

  Args:
    chunks: chunks per clip (the last axis is cut into this many near-equal parts).
    thresholds: RMS ratios to the loudest chunk, cheapest (highest) first, ending at 0.
    temperature: width of the backward pass's sigmoid, in RMS ratio.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  if chunks < 1:
    raise ValueError(f"chunk_drop: chunks must be >= 1, got {chunks}")
  values = _base.ladder(thresholds, name="chunk_drop")
  if values[-1] > values[0] or values[-1] < 0 or values[0] > 1:
    raise ValueError(f"chunk_drop: thresholds must fall from at most 1 down to 0 or more, got "
                     f"{tuple(thresholds)}")

  def keep_of(setting, wave):
    threshold = _base.ladder_to_physical(values, _base.as_setting(setting, wave.dtype))
    levels = chunk_levels(wave, chunks)
    hard = chunks_sent(levels, threshold)
    soft = jax.nn.sigmoid((levels - threshold) / temperature)
    return _base.straight_through(soft, hard)

  @jax.jit
  def apply(setting, wave):
    keep = keep_of(setting, wave)
    return wave * keep[..., jnp.asarray(chunk_ids(wave.shape[-1], chunks))]

  @jax.jit
  def cost(setting, wave):
    return jnp.sum(keep_of(setting, wave))

  return _base.ladder_knob(values, apply, cost, check=check_audio,
                           name="chunk_drop", unit="chunks", round_rule=round_rule)
