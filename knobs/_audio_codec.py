"""The audio bitrate knob: a differentiable surrogate of a speech codec (calibrated on Opus).

A transform codec at a low bitrate does three things to speech: it narrows the band it codes
(Opus codes narrowband, up to 4 kHz, below about 10 kb/s, and wideband above); it quantizes what
it codes, its noise following the signal's spectrum (more bits, less noise); and it fills what
it could not afford with noise of the right energy (CELT's noise filling), so the spectral
envelope survives. The surrogate does the three on 20-ms frames (the codec's packets) at a hop
of 10 ms, square-root Hann windows on both sides (without a bitrate's effects it gives the input
back exactly):

- the frame's rFFT is masked at the band edge of the bitrate (`BANDWIDTH_SWITCH`);
- each of `BANDS` bands of the frame is quantized with a step `sqrt(12) rms 10^(-snr / 20)`, its
  `rms` the band's, `snr = SNR_AT_MIN + SNR_PER_DOUBLING log2(bitrate / bitrates[0])` dB;
- the coefficients that round to zero come back with the band's lost energy and a fixed
  pseudo-random phase.

Forward: the hard band edge, the rounding and the filling. Backward: a sigmoid edge in the
bitrate (so the gradient sees the band that opens at the switch), and each coefficient scaled by
a sigmoid of its size in steps around half a step, the size under which rounding zeroes it (so
the gradient sees the weak parts of the spectrum a lower bitrate drops; a straight-through
rounding error has no sign a first-order gradient could use).

The constants are calibrated on libopus (`oneadapt_jax.opus`) over the speech stream by what the
task sees: the recogniser's word accuracy through the surrogate is within about 3 points of its
accuracy through Opus at each rung (`benchmarks/speech_codec.py`). Opus does not keep the waveform
(its SNR is 4 to 9 dB lower than the surrogate's), and a surrogate matched on waveform SNR cost
the recogniser 5 to 18 more points than Opus. `tests/test_speech.py` checks the surrogate against
the real codec: its SNR ranks the rungs as Opus's does, the band edges match, the word accuracy
stays close, and the chain's bytes and byte gradient follow the real sender's.

Cost: bytes at the target bitrate, `T / source_rate * bitrate / 8` per clip (Opus's VBR spends
about 80% of it on this stream; the benchmark compares).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from knobs import _audio, _base

FRAME = 320  # samples: 20 ms at 16 kHz
BANDS = 8
BANDWIDTH_SWITCH = 10000.0  # b/s: narrowband (4 kHz) below, wideband (8 kHz) above
SNR_AT_MIN = 9.0  # dB at the lowest rung (6 kb/s)
SNR_PER_DOUBLING = 4.0  # dB
SURVIVAL_WIDTH = 0.25  # the backward pass's sigmoid width, in steps


HOP = FRAME // 2
#: A square-root Hann window (periodic): analysis and synthesis with it at a hop of half a
#: frame add back to the input exactly (the squares of two overlapping halves sum to one).
WINDOW = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)


def _phases(frames: int, bins: int) -> np.ndarray:
  """Fixed pseudo-random phases `[frames, bins]` in `[0, 2 pi)`, for any number of frames."""
  return 2 * np.pi * np.random.default_rng(0).uniform(size=(frames, bins))


def _window(ndim: int, dtype) -> jax.Array:
  return jnp.asarray(WINDOW, dtype).reshape((1,) * (ndim - 1) + (-1,))


def _frames(wave: jax.Array) -> jax.Array:
  """`[..., T]` -> windowed frames `[..., m, FRAME]` at a hop of `HOP`, the first starting half a
  frame before the audio, the last ending past it (`m = ceil(T / HOP) + 1`)."""
  num = wave.shape[-1]
  count = -(-num // HOP) + 1
  padded = jnp.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(HOP, (count + 1) * HOP - num - HOP)])
  index = np.arange(count)[:, None] * HOP + np.arange(FRAME)[None, :]
  return padded[..., index] * _window(wave.ndim + 1, wave.dtype)


def _overlap_add(frames: jax.Array, num: int) -> jax.Array:
  """The inverse of `_frames` (after windowing the frames again): `[..., m, FRAME]` ->
  `[..., num]`."""
  frames = frames * _window(frames.ndim, frames.dtype)
  halves = frames.reshape(frames.shape[:-1] + (2, HOP))
  blocks = halves[..., 1:, 0, :] + halves[..., :-1, 1, :]
  return blocks.reshape(frames.shape[:-2] + (-1,))[..., :num]


def audio_bitrate(
    *,
    source_rate: float = 16000.0,
    bitrates: Sequence[float] = (6000.0, 8000.0, 12000.0, 16000.0, 24000.0, 32000.0),
    switch_width: float = 1500.0,
    round_rule: str = "up",
) -> _base.Knob:
  """Audio-codec bitrate knob (b/s), a surrogate of Opus on 16 kHz speech.

  Cost: bytes (unit ``"bytes"``), `T / source_rate * bitrate / 8` per clip.

  Example:
    >>> import jax.numpy as jnp, knobs, numpy as np
    >>> t = np.arange(3200) / 16000.0
    >>> tone = jnp.asarray(0.5 * np.sin(2 * np.pi * 5000 * t), jnp.float32)   # 5 kHz
    >>> knob = knobs.audio_bitrate()
    >>> out = knob.apply(jnp.float32(0.0), tone)   # 6 kb/s: narrowband, so the tone is gone
    >>> float(jnp.abs(out[400:-400]).max()) < 1e-3   # (its abrupt start and end are not)
    True
    >>> float(knob.cost(jnp.float32(1.0), tone))   # 0.2 s at 32 kb/s
    800.0

  Args:
    source_rate: the rate of the incoming audio, in Hz. The frames are `FRAME` samples (20 ms
      at 16 kHz) and the constants were calibrated at 16 kHz; resample other rates to it.
    bitrates: the codec's bitrates in b/s, cheapest first.
    switch_width: the backward pass's sigmoid width at the band switch, in b/s.
    round_rule: `"up"` (the more expensive neighbour) or `"nearest"`.
  """
  values = _base.ladder(bitrates, name="audio_bitrate")
  if values[0] <= 0 or values[-1] < values[0]:
    raise ValueError(f"audio_bitrate: bitrates must increase from above 0, got {tuple(bitrates)}")
  if not switch_width > 0:
    raise ValueError(f"audio_bitrate: switch_width must be > 0, got {switch_width}")
  freqs = np.fft.rfftfreq(FRAME, 1.0 / source_rate)
  band_of = np.minimum((freqs / (source_rate / 2) * BANDS).astype(int), BANDS - 1)
  onehot = np.eye(BANDS, dtype=np.float32)[band_of]  # [bins, BANDS]

  def band_mask(rate, size, ndim):
    """The codec's band at `rate` over the rFFT bins of `size` samples: hard in value, a
    sigmoid edge (in frequency and at the switch, in the bitrate) in gradient."""
    f = jnp.asarray(np.fft.rfftfreq(size, 1.0 / source_rate), rate.dtype)
    cutoff_soft = source_rate / 4 * (1 + jax.nn.sigmoid((rate - BANDWIDTH_SWITCH) / switch_width))
    cutoff_hard = jnp.where(rate < BANDWIDTH_SWITCH, source_rate / 4, source_rate)
    soft = jax.nn.sigmoid((cutoff_soft - f) / (0.01 * source_rate))
    return _base.straight_through(soft, f < cutoff_hard).reshape((1,) * (ndim - 1) + (-1,))

  def bitrate_of(setting, dtype):
    return _base.ladder_to_physical(values, _base.as_setting(setting, dtype))

  @jax.jit
  def apply(setting, wave):
    rate = bitrate_of(setting, wave.dtype)
    num = wave.shape[-1]
    spectrum = jnp.fft.rfft(_frames(wave), axis=-1)
    kept = spectrum * band_mask(rate, FRAME, spectrum.ndim).astype(spectrum.dtype)
    power = jnp.real(kept) ** 2 + jnp.imag(kept) ** 2
    band = jnp.asarray(onehot, wave.dtype)
    width = jnp.sum(band, axis=0).reshape((1,) * (power.ndim - 1) + (-1,))
    rms = jnp.sqrt((power @ band) / width + 1e-10) @ band.T  # each bin's band
    snr = SNR_AT_MIN + SNR_PER_DOUBLING * jnp.log2(rate / values[0])
    step = jnp.sqrt(12.0) * rms * 10.0 ** (-snr / 20.0)
    quantized = jax.lax.complex(jnp.round(jnp.real(kept) / step) * step,
                                jnp.round(jnp.imag(kept) / step) * step)
    # Noise filling (as Opus's CELT layer does): what rounds to zero comes back as noise of the
    # band's lost energy, with a fixed pseudo-random phase, so the spectral envelope survives.
    zeroed = (jnp.abs(quantized) == 0).astype(power.dtype)
    lost = jnp.sqrt(((power * zeroed) @ band) / ((zeroed @ band) + 1e-6) + 1e-12) @ band.T
    phase = jnp.asarray(_phases(power.shape[-2], freqs.size), power.dtype)
    phase = phase.reshape((1,) * (power.ndim - 2) + phase.shape)  # [..., frames, bins]
    quantized = quantized + jax.lax.complex(jnp.cos(phase), jnp.sin(phase)) * (
        lost * zeroed).astype(quantized.dtype)
    # What the rounding costs a model is mostly the coefficients it zeroes (those under half a
    # step): the gradient sees them fade as the step grows. (The rounding noise of the rest has
    # no sign a first-order gradient could use.)
    survives = jax.nn.sigmoid((jnp.abs(kept) / step - 0.5) / SURVIVAL_WIDTH)
    coded = _base.straight_through(kept * survives.astype(kept.dtype), quantized)
    return _overlap_add(jnp.fft.irfft(coded, n=FRAME, axis=-1), num).astype(wave.dtype)

  @jax.jit
  def cost(setting, wave):
    seconds = _audio._batch_size(wave) * wave.shape[-1] / source_rate
    return seconds * bitrate_of(setting, wave.dtype) / 8.0

  return _base.ladder_knob(values, apply, cost, check=_audio.check_audio,
                           name="audio_bitrate", unit="bytes", round_rule=round_rule)
