"""Small real clips for tests, cut from scikit-image's bundled photographs (no network), and
helpers the test modules share."""

import functools

import numpy as np
from skimage import data, transform


@functools.cache
def _photo(name: str, scale: float) -> np.ndarray:
  image = getattr(data, name)()
  if scale != 1.0:
    image = transform.rescale(image, scale, channel_axis=-1, anti_aliasing=True)
    return image.astype(np.float32)
  return image.astype(np.float32) / 255.0


def pan(num_frames: int = 4, height: int = 37, width: int = 53, *, name: str = "astronaut",
        scale: float = 0.25, steps=(1, 3, 0, 2, 5, 1)) -> np.ndarray:
  """A `[T, H, W, 3]` float32 clip: a window panning over a real photograph."""
  image = _photo(name, scale)
  offsets = np.concatenate([[0], np.cumsum(steps)])[:num_frames]
  frames = [image[o:o + height, o:o + width] for o in offsets]
  clip = np.stack(frames)
  assert clip.shape == (num_frames, height, width, 3), clip.shape
  return np.clip(clip, 0.0, 1.0)


def assert_same_weights(a, b) -> None:
  """Two models' parameters are equal, array by array (a training run reproduced from its seed)."""
  from models import trained

  first, second = trained._flat(a), trained._flat(b)
  assert list(first) == list(second)
  for path in first:
    np.testing.assert_array_equal(first[path], second[path], err_msg=path)
