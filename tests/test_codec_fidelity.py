"""The quantization knob against real codecs and an independent NumPy/SciPy reference."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from PIL import Image
from scipy.stats import spearmanr
from skimage import data

import knobs
from knobs._codec import _upsample2
from tests import clips

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
IMAGES = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image's colour photographs


def _psnr(a, b):
  return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def _pillow_jpeg(image_u8, quality, subsampling):
  buf = io.BytesIO()
  Image.fromarray(image_u8).save(buf, "JPEG", quality=quality, subsampling=subsampling)
  decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
  return decoded.astype(np.float64) / 255.0, len(buf.getvalue())


@pytest.mark.parametrize("chroma_subsampling, pillow_subsampling", [(False, 0), (True, 2)])
def test_jpeg_mode_matches_pillow(chroma_subsampling, pillow_subsampling):
  """PSNR within 1 dB of Pillow's JPEG at every quality; bytes estimate ranks the file sizes."""
  knob = knobs.quantization(mode="jpeg", values=QUALITIES, chroma_subsampling=chroma_subsampling)
  sizes, estimates, gaps = [], [], []
  for name in IMAGES:
    image = getattr(data, name)()
    frames = jnp.asarray(image[None].astype(np.float32) / 255.0)
    original = image.astype(np.float64) / 255.0
    for i, quality in enumerate(QUALITIES):
      setting = jnp.float32(i / (len(QUALITIES) - 1))
      assert float(knob.to_physical(setting)) == pytest.approx(quality)
      decoded, size = _pillow_jpeg(image, quality, pillow_subsampling)
      ours = np.asarray(knob.apply(setting, frames))[0]
      gaps.append((name, quality, _psnr(ours, original) - _psnr(decoded, original)))
      sizes.append(size)
      estimates.append(float(knob.cost(setting, frames)))
  worst = max(gaps, key=lambda g: abs(g[2]))
  assert abs(worst[2]) < 1.0, f"PSNR gap to Pillow's JPEG: {worst}"
  rho = spearmanr(sizes, estimates).statistic
  assert rho >= 0.95, f"Spearman(bytes estimate, real JPEG size) = {rho:.3f}"


def _reference_h264_444(frame, qp):
  """NumPy/SciPy re-implementation: BT.601 full-range YCbCr, 8x8 DCT, flat H.264 step."""
  h, w, _ = frame.shape
  padded = np.pad(frame * 255.0, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")
  m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
  ycc = padded @ m.T
  ycc[..., 0] -= 128.0
  step = 0.625 * 2 ** (qp / 6)
  out = np.empty_like(ycc)
  for c in range(3):
    for by in range(0, ycc.shape[0], 8):
      for bx in range(0, ycc.shape[1], 8):
        block = ycc[by:by + 8, bx:bx + 8, c]
        coef = scipy.fft.dctn(block, norm="ortho")
        out[by:by + 8, bx:bx + 8, c] = scipy.fft.idctn(np.round(coef / step) * step, norm="ortho")
  out[..., 0] += 128.0
  rgb = out @ np.linalg.inv(m).T / 255.0
  return np.clip(rgb[:h, :w], 0.0, 1.0)


@pytest.mark.parametrize("qp", [20, 32, 50])
def test_h264_mode_matches_numpy_reference(qp):
  frames = clips.pan(2, 37, 53)
  knob = knobs.quantization(values=(50, 20), chroma_subsampling=False)
  setting = jnp.float32((50 - qp) / 30)
  ours = np.asarray(knob.apply(setting, jnp.asarray(frames)))
  for t in range(2):
    reference = _reference_h264_444(frames[t].astype(np.float64), qp)
    close = np.isclose(ours[t], reference, atol=2e-3)
    # A coefficient within float error of a .5 boundary may round the other way.
    assert close.mean() > 0.995, f"QP {qp}: {1 - close.mean():.2%} of values differ"


def test_bytes_fall_as_qp_rises_and_repeated_frames_are_nearly_free():
  frames = jnp.asarray(clips.pan(4, 48, 64))
  knob = knobs.quantization()
  costs = [float(knob.cost(jnp.float32(s), frames)) for s in (0.0, 0.5, 1.0)]
  assert costs[0] < costs[1] < costs[2]
  held = jnp.stack([frames[0]] * 4)
  one = float(knob.cost(jnp.float32(1.0), frames[:1]))
  assert float(knob.cost(jnp.float32(1.0), held)) == pytest.approx(one, rel=1e-3)


def test_roi_blocks_at_lower_qp_cost_more_and_look_better():
  frames = jnp.asarray(clips.pan(2, 48, 64))
  knob = knobs.roi_quality((48, 64))
  flat = jnp.full((3, 4), 0.2)
  roi = flat.at[1, 1:3].set(1.0)
  assert float(knob.cost(roi, frames)) > float(knob.cost(flat, frames))
  err_flat = np.abs(np.asarray(knob.apply(flat, frames) - frames))[:, 16:32, 16:48].mean()
  err_roi = np.abs(np.asarray(knob.apply(roi, frames) - frames))[:, 16:32, 16:48].mean()
  outside_flat = np.abs(np.asarray(knob.apply(flat, frames) - frames))[:, :16].mean()
  outside_roi = np.abs(np.asarray(knob.apply(roi, frames) - frames))[:, :16].mean()
  assert err_roi < 0.5 * err_flat
  assert outside_roi == pytest.approx(outside_flat, rel=0.05)


def _numpy_fancy_upsample(plane: np.ndarray) -> np.ndarray:
  """libjpeg's "fancy" 2x upsampling per axis: 3/4 of the nearer sample, 1/4 of the farther,
  the edge sample repeated."""
  for axis in (-1, -2):
    x = np.moveaxis(plane, axis, -1)
    padded = np.concatenate([x[..., :1], x, x[..., -1:]], axis=-1)
    out = np.empty(x.shape[:-1] + (2 * x.shape[-1],))
    out[..., 0::2] = 0.75 * x + 0.25 * padded[..., :-2]
    out[..., 1::2] = 0.75 * x + 0.25 * padded[..., 2:]
    plane = np.moveaxis(out, -1, axis)
  return plane


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 7, 4), (2, 1, 9)])
def test_chroma_upsampling_is_libjpegs_triangle_and_resizes(shape):
  """The 4:2:0 chroma upsampling against the triangle filter in NumPy and jax.image.resize."""
  plane = np.random.default_rng(len(shape)).uniform(size=shape).astype(np.float32)
  ours = np.asarray(_upsample2(jnp.asarray(plane)))
  np.testing.assert_allclose(ours, _numpy_fancy_upsample(plane.astype(np.float64)), atol=1e-6)
  resized = jax.image.resize(plane, (*shape[:-2], 2 * shape[-2], 2 * shape[-1]),
                             method="linear", antialias=False)
  np.testing.assert_allclose(ours, np.asarray(resized), atol=1e-6)


def test_one_qp_everywhere_is_the_roi_map_at_that_qp():
  """The scalar knob's single step (a [1, 1] map) codes and counts as a full map of that step does,
  and its gradient in the setting matches the map's summed."""
  frames = jnp.asarray(clips.pan(3, 40, 56))
  scalar = knobs.quantization(values=(42, 36, 30, 24))
  roi = knobs.roi_quality((40, 56), values=(42, 36, 30, 24))
  setting = jnp.float32(0.4)
  grid = jnp.full(roi.init().shape, setting)
  np.testing.assert_allclose(scalar.apply(setting, frames), roi.apply(grid, frames), atol=1e-6)
  np.testing.assert_allclose(scalar.cost(setting, frames), roi.cost(grid, frames), rtol=1e-5)
  g_scalar = jax.grad(lambda s: scalar.cost(s, frames))(setting)
  g_roi = jnp.sum(jax.grad(lambda m: roi.cost(m, frames))(grid))
  np.testing.assert_allclose(g_scalar, g_roi, rtol=1e-4)
