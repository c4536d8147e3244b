"""The real encoder: H.264 (libx264 in PyAV's wheel) for one segment, bytes and decoded frames.

`encode` is the ground truth every surrogate and every adaptation decision is measured against:
it returns the exact H.264 bitstream and what the analytics side decodes from it, at the input's
size and frame count (downscaled frames are scaled back up, dropped frames hold the last sent
frame, as the knobs model them).

Rate control. Without a region-of-interest map the segment is coded at constant QP (`qp`
option), so `qp` is the QP of every P macroblock (x264 lowers I and raises B frames by its
fixed ratios). x264 ignores region-of-interest offsets at constant QP (measured: byte-identical
output), so with `roi_qp` the segment is coded in CRF mode at `crf = qp` with per-macroblock QP
offsets `roi_qp - qp` (FFmpeg's `addroi` filter, which libx264 turns into x264 quant offsets;
adaptive quantisation stays on, as CRF needs). Same inputs, same bytes: x264 runs on one thread.
"""

from __future__ import annotations

import collections
import dataclasses
import fractions
import hashlib
import threading

import numpy as np

import knobs

MACROBLOCK = 16
_QP_RANGE = 51  # libx264 scales AVRegionOfInterest.qoffset in [-1, 1] by this (8-bit video)


def macroblock_grid(height: int, width: int) -> tuple[int, int]:
  """`(rows, cols)` of 16x16 macroblocks covering an `height x width` picture (the last ones
  partial)."""
  return -(-height // MACROBLOCK), -(-width // MACROBLOCK)


@dataclasses.dataclass(frozen=True)
class Encoding:
  """One encoded segment.

  Attributes:
    bitstream: the H.264 Annex-B elementary stream (headers included), exactly as sent.
    frames: what the server decodes, `uint8 [T, H, W, 3]` at the input's size and count.
    encoded_size: `(h, w)` of the coded pictures.
    sent: `bool [T]`, which input frames were coded (the others hold the last sent one).
    qp: the QP (constant-QP mode) or CRF (with a RoI map).
    preset: the x264 preset.
  """

  bitstream: bytes
  frames: np.ndarray
  encoded_size: tuple[int, int]
  sent: np.ndarray
  qp: float
  preset: str

  @property
  def num_bytes(self) -> int:
    return len(self.bitstream)

  @property
  def frames_sent(self) -> int:
    return int(self.sent.sum())

  def as_float(self) -> np.ndarray:
    return self.frames.astype(np.float32) / 255.0


def kept_frames(num_frames: int, fraction: float) -> np.ndarray:
  """The frames a frame rate of `fraction` of the source keeps: `knobs.frames_sent`, the rule
  of `knobs.frame_rate`."""
  return knobs.frames_sent(num_frames, float(fraction))


def encoded_size(height: int, width: int, resolution: float) -> tuple[int, int]:
  """The coded size for a scale factor: rounded to even (4:2:0), at least 16x16."""
  def side(n):
    return int(max(16, 2 * round(n * resolution / 2)))
  return min(side(height), height - height % 2), min(side(width), width - width % 2)


def _as_uint8(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"encode needs frames [T, H, W, 3], got shape {frames.shape}")
  if frames.shape[0] == 0:
    raise ValueError("encode got an empty segment (T = 0)")
  if frames.shape[1] < 16 or frames.shape[2] < 16:
    raise ValueError(f"encode needs frames of at least 16x16, got {frames.shape[1:3]}")
  if frames.dtype == np.uint8:
    return np.ascontiguousarray(frames)
  if not np.issubdtype(frames.dtype, np.floating):
    raise ValueError(f"encode needs uint8 or float frames in [0, 1], got dtype {frames.dtype}")
  if not np.all(np.isfinite(frames)):
    raise ValueError("encode got frames with NaN or infinite values")
  return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def _roi_rectangles(roi_qp: np.ndarray, base_qp: float, size: tuple[int, int]):
  """Per-macroblock QPs -> `addroi` rectangles (runs of equal QP along each macroblock row)."""
  h, w = size
  grid = macroblock_grid(h, w)
  roi_qp = np.asarray(roi_qp, np.float64)
  if roi_qp.ndim != 2:
    raise ValueError(f"roi_qp must be a 2-D per-macroblock map, got shape {roi_qp.shape}")
  if not np.all(np.isfinite(roi_qp)) or roi_qp.min() < 0 or roi_qp.max() > 51:
    raise ValueError("roi_qp values must be QPs within 0..51")
  # The map may be given on another grid (e.g. the full-resolution frame's): nearest neighbour.
  rows = np.minimum((np.arange(grid[0]) + 0.5) * roi_qp.shape[0] / grid[0], roi_qp.shape[0] - 1)
  cols = np.minimum((np.arange(grid[1]) + 0.5) * roi_qp.shape[1] / grid[1], roi_qp.shape[1] - 1)
  resampled = roi_qp[rows.astype(int)][:, cols.astype(int)]
  rects = []
  for r in range(grid[0]):
    c = 0
    while c < grid[1]:
      end = c
      while end + 1 < grid[1] and resampled[r, end + 1] == resampled[r, c]:
        end += 1
      offset = (resampled[r, c] - base_qp) / _QP_RANGE
      if offset != 0:
        x, y = c * MACROBLOCK, r * MACROBLOCK
        rects.append((x, y, min((end + 1) * MACROBLOCK, w) - x, min(MACROBLOCK, h - y),
                      float(np.clip(offset, -1.0, 1.0))))
      c = end + 1
  return rects


def _encode_uncached(frames, *, resolution, qp, sent, roi_qp, preset):
  import av

  height, width = frames.shape[1:3]
  size = encoded_size(height, width, resolution)
  encoder = av.CodecContext.create("libx264", "w")
  encoder.width, encoder.height = size[1], size[0]
  encoder.pix_fmt = "yuv420p"
  rate = fractions.Fraction(10, 1)
  encoder.time_base = 1 / rate
  encoder.framerate = rate
  options = {"preset": preset, "threads": "1"}
  graph = None
  if roi_qp is None:
    options["qp"] = f"{qp:g}"
  else:
    options["crf"] = f"{qp:g}"
    rects = _roi_rectangles(roi_qp, qp, size)
    graph = av.filter.Graph()
    node = graph.add_buffer(width=size[1], height=size[0], format="yuv420p",
                            time_base=encoder.time_base)
    for x, y, w, h, offset in rects:
      roi = graph.add("addroi", f"x={x}:y={y}:w={w}:h={h}:qoffset={offset:.6f}")
      node.link_to(roi)
      node = roi
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
  encoder.options = options
  encoder.open()

  packets = []
  for pts, index in enumerate(np.flatnonzero(sent)):
    picture = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
    picture = picture.reformat(width=size[1], height=size[0], format="yuv420p",
                               interpolation="AREA")
    picture.pts = pts
    picture.time_base = encoder.time_base
    if graph is not None:
      graph.push(picture)
      picture = graph.pull()
    packets.extend(encoder.encode(picture))
  packets.extend(encoder.encode(None))
  bitstream = b"".join(bytes(p) for p in packets)
  out = _decode(bitstream, sent, height, width)
  sent.setflags(write=False)
  return Encoding(bitstream, out, size, sent, float(qp), preset)


def _decode(bitstream: bytes, sent: np.ndarray, height: int, width: int) -> np.ndarray:
  """What the server decodes from `bitstream`: `uint8 [T, height, width, 3]`, scaled back to the
  input's size, every dropped frame holding the last sent one. H.264 decoding is bit-exact, so
  decoding the same bytes again gives the same frames (the cache keeps only the bytes)."""
  import av

  decoder = av.CodecContext.create("h264", "r")
  decoded = []
  for packet in decoder.parse(bitstream) + decoder.parse(None) + [None]:
    for picture in decoder.decode(packet):
      decoded.append(picture.reformat(width=width, height=height, format="rgb24",
                                      interpolation="BILINEAR").to_ndarray())
  if len(decoded) != sent.sum():
    raise RuntimeError(f"x264 round trip decoded {len(decoded)} of {sent.sum()} frames")
  # Each frame shows the last sent one at or before it: its position among the decoded frames
  # (frame 0 is always sent).
  held = np.cumsum(sent) - 1
  out = np.stack(decoded)[held]
  out.setflags(write=False)
  return out


#: The cache keeps each encode's bytes, not its decoded frames, and decodes them again on a hit
#: (bit-exact; a decode costs a few percent of an encode), so what it holds is the size of the
#: bitstreams: a 768x576 segment decodes to 13 MB but codes to 5 to 500 kB. At most this many
#: segments and this many bytes of bitstream (least recently used dropped first).
CACHE_ITEMS = 4096
CACHE_BYTES = 256 << 20
_CACHE: collections.OrderedDict[str, tuple] = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()
_ENCODES_RUN = 0


def encodes_run() -> int:
  """How many segments x264 has really encoded in this process (cache hits not counted)."""
  return _ENCODES_RUN


def encode(frames, *, resolution: float = 1.0, qp: float = 23, fps: float | None = None,
           source_fps: float = 10.0, sent=None, roi_qp=None, preset: str = "medium",
           cache: bool = True) -> Encoding:
  """Encodes one segment with x264 and decodes it again.

  Args:
    frames: `uint8 [T, H, W, 3]`, or float in `[0, 1]` (rounded to 8 bits).
    resolution: scale factor in `(0, 1]`; the coded size is rounded to even (4:2:0).
    qp: the QP (0..51); with `roi_qp`, the CRF of the background.
    fps: the frame rate to send (held frames fill the gaps), `None` for every frame.
    source_fps: the frame rate of `frames`.
    sent: instead of `fps`, exactly which frames to send, `bool [T]` (e.g. a frame filter's
      decisions); frame 0 must be sent.
    roi_qp: optional per-16x16-macroblock QP map (any grid; resampled to the coded size's).
    preset: the x264 preset (speed versus compression).
    cache: look up and keep the result in the in-memory cache (off: always encode, e.g. to
      time x264).

  Returns:
    An `Encoding` with the exact bytes and the decoded frames; repeated calls with the same
    content and settings come from an in-memory cache.
  """
  frames = _as_uint8(frames)
  if not 0 < resolution <= 1:
    raise ValueError(f"resolution must be in (0, 1], got {resolution}")
  if not 0 <= qp <= 51:
    raise ValueError(f"qp must be within 0..51, got {qp}")
  if sent is None:
    fraction = 1.0 if fps is None else float(fps) / float(source_fps)
    if not 0 < fraction <= 1 + 1e-9:
      raise ValueError(f"fps must be in (0, source_fps={source_fps}], got {fps}")
    sent = kept_frames(len(frames), min(fraction, 1.0))
  else:
    if fps is not None:
      raise ValueError("encode takes fps or sent, not both")
    sent = np.asarray(sent)
    if sent.dtype != bool or sent.shape != (len(frames),):
      raise ValueError(f"sent must be bool [{len(frames)}], got {sent.dtype} {sent.shape}")
    if not sent[0]:
      raise ValueError("sent[0] must be True: the first frame of a segment is always sent")
  key_parts = [frames.shape, round(resolution, 6), round(float(qp), 4), sent.tobytes(), preset,
               None if roi_qp is None else np.asarray(roi_qp, np.float64).tobytes()]
  digest = hashlib.sha256(frames.tobytes())
  digest.update(repr(key_parts).encode())
  key = digest.hexdigest()
  with _CACHE_LOCK:
    hit = _CACHE.get(key) if cache else None
    if hit is not None:
      _CACHE.move_to_end(key)
  if hit is not None:
    bitstream, size, sent, qp, preset = hit
    return Encoding(bitstream, _decode(bitstream, sent, *frames.shape[1:3]), size, sent, qp,
                    preset)
  result = _encode_uncached(frames, resolution=resolution, qp=qp, sent=sent.copy(),
                            roi_qp=roi_qp, preset=preset)
  global _ENCODES_RUN
  with _CACHE_LOCK:
    _ENCODES_RUN += 1
    if not cache:
      return result
    _CACHE[key] = (result.bitstream, result.encoded_size, result.sent, result.qp, result.preset)
    held = sum(len(item[0]) for item in _CACHE.values())
    while len(_CACHE) > 1 and (len(_CACHE) > CACHE_ITEMS or held > CACHE_BYTES):
      held -= len(_CACHE.popitem(last=False)[1][0])
  return result


def bracket(num_values: int, setting: float) -> tuple[float, float]:
  """The two ladder settings around `setting` (equal on a rung): what the paper re-encodes.

  The paper's InputGrad for a knob is the difference between the encodes at these two settings;
  with `encode`'s cache, the one that is the current configuration costs nothing extra.
  """
  scaled = float(np.clip(setting, 0.0, 1.0)) * (num_values - 1)
  low, high = np.floor(scaled + 1e-6), np.ceil(scaled - 1e-6)
  high = max(high, low)
  return low / (num_values - 1), high / (num_values - 1)
