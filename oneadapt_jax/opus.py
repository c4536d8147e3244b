"""Opus, the real audio codec of the speech stream: libopus through PyAV's bundled FFmpeg.

`encode(wave, bitrate)` codes 16 kHz mono float audio with libopus (VBR at the target bitrate,
20-ms packets, the `voip` application) in an Ogg container and returns the packets' sizes and
the decoded audio at 16 kHz, aligned with the input (the Ogg demuxer drops Opus's pre-skip).
Bytes are the packets' payloads (the container's pages are not counted: a real-time sender
puts the packets in RTP, whose header compression makes them a few bytes a packet).
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np

RATE = 16000
PACKET = 320  # samples: 20 ms at 16 kHz
#: The bitrates libopus accepts for 16 kHz mono speech here, bits per second.
MIN_BITRATE, MAX_BITRATE = 6000, 64000


class Coded(NamedTuple):
  """One clip through Opus: the decoded audio, and each 20-ms packet's size in bytes."""

  audio: np.ndarray
  packet_bytes: np.ndarray


def encode(wave: np.ndarray, bitrate: float) -> Coded:
  """`wave` (float `[T]` in `[-1, 1]`, 16 kHz) through libopus at `bitrate` bits per second."""
  import av

  wave = np.asarray(wave)
  if wave.ndim != 1 or wave.size == 0:
    raise ValueError(f"opus.encode takes mono audio [T], got shape {wave.shape}")
  if not np.all(np.isfinite(wave)):
    raise ValueError("opus.encode: the audio contains NaN or infinite samples")
  if not MIN_BITRATE <= bitrate <= MAX_BITRATE:
    raise ValueError(f"opus.encode: bitrate must be in [{MIN_BITRATE}, {MAX_BITRATE}] b/s, "
                     f"got {bitrate}")
  buffer = io.BytesIO()
  sizes = []
  with av.open(buffer, "w", format="ogg") as container:
    stream = container.add_stream("libopus", rate=RATE, layout="mono",
                                  options={"application": "voip", "frame_duration": "20"})
    stream.bit_rate = int(bitrate)
    frame = av.AudioFrame.from_ndarray(np.clip(wave, -1, 1).astype(np.float32)[None],
                                       format="flt", layout="mono")
    frame.sample_rate = RATE
    for packet in [*stream.encode(frame), *stream.encode(None)]:
      sizes.append(packet.size)
      container.mux(packet)
  buffer.seek(0)
  decoded = []
  with av.open(buffer) as container:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    for frame in container.decode(container.streams.audio[0]):
      decoded.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
  audio = np.concatenate(decoded)[:len(wave)]
  audio = np.pad(audio, (0, len(wave) - len(audio)))
  return Coded(audio.astype(np.float32), np.asarray(sizes, np.int64))
