"""Bad input gets a ValueError that names the problem, not a shape error from inside XLA."""

import jax.numpy as jnp
import numpy as np
import pytest

import knobs
from tests import clips

FACTORIES = {
    "resolution": lambda: knobs.resolution(),
    "frame_rate": lambda: knobs.frame_rate(),
    "quantization": lambda: knobs.quantization(),
    "roi_quality": lambda: knobs.roi_quality((37, 53)),
    "frame_filter": lambda: knobs.frame_filter(),
    "chain": lambda: knobs.chain(frame_rate=knobs.frame_rate(), frame_filter=knobs.frame_filter()),
}
GOOD = clips.pan(3, 37, 53)


def _nan_frames():
  frames = GOOD.copy()
  frames[1, 4, 5, 0] = np.nan
  return frames


BAD_FRAMES = {
    "rank": (GOOD[0], "rank >= 4"),
    "integer": ((GOOD * 255).astype(np.uint8), "floating point"),
    "nan": (_nan_frames(), "NaN"),
    "range": (GOOD * 255.0, r"\[0, 1\]"),
    "empty_time": (GOOD[:0], "empty time axis"),
    "not_array": ([[1.0, 2.0]], "array"),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("problem", sorted(BAD_FRAMES))
def test_bad_frames_raise_value_error(name, problem):
  knob = FACTORIES[name]()
  frames, message = BAD_FRAMES[problem]
  with pytest.raises(ValueError, match=message):
    knob.apply(knob.init(), frames)
  with pytest.raises(ValueError, match=message):
    knob.cost(knob.init(), frames)


@pytest.mark.parametrize("name", sorted(n for n in FACTORIES if n != "chain"))
@pytest.mark.parametrize("value, message", [(1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"),
                                            (np.nan, "NaN")])
def test_setting_out_of_range_raises(name, value, message):
  knob = FACTORIES[name]()
  setting = jnp.full_like(knob.init(), value)
  with pytest.raises(ValueError, match=message):
    knob.apply(setting, GOOD)


@pytest.mark.parametrize("name", ["resolution", "quantization", "frame_rate"])
def test_setting_of_wrong_shape_raises(name):
  knob = FACTORIES[name]()
  with pytest.raises(ValueError, match="shape"):
    knob.apply(jnp.ones((2,)), GOOD)


def test_roi_quality_rejects_frames_of_another_size():
  knob = knobs.roi_quality((64, 64))
  with pytest.raises(ValueError, match="built for 64x64"):
    knob.apply(knob.init(), GOOD)


def test_chain_rejects_wrong_keys_and_mixed_units():
  knob = knobs.chain(resolution=knobs.resolution(), frame_rate=knobs.frame_rate())
  with pytest.raises(ValueError, match="keys"):
    knob.apply({"resolution": jnp.float32(1.0)}, GOOD)
  with pytest.raises(ValueError, match="units"):
    knob.cost(knob.init(), GOOD)


@pytest.mark.parametrize("make, message", [
    (lambda: knobs.resolution(scales=(0.5,)), "at least two"),
    (lambda: knobs.resolution(scales=(0.5, 0.25)), "increase"),
    (lambda: knobs.resolution(scales=(0.5, 2.0)), "increase within"),
    (lambda: knobs.quantization(values=(20, 50)), "decrease"),
    (lambda: knobs.quantization(mode="jpeg", values=(90, 10)), "increase"),
    (lambda: knobs.quantization(mode="webp"), "mode"),
    (lambda: knobs.frame_rate(source_fps=0.0), "source_fps"),
    (lambda: knobs.frame_filter(thresholds=(0.0, 0.5)), "decrease"),
    (lambda: knobs.scale_cost(knobs.resolution(), -1.0), "factor"),
    (lambda: knobs.chain(), "at least one"),
    (lambda: knobs.chain(a="resolution"), "not a Knob"),
])
def test_bad_options_raise(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_nothing_is_modified_by_a_rejected_call():
  frames = _nan_frames()
  before = frames.copy()
  with pytest.raises(ValueError):
    knobs.resolution().apply(jnp.float32(0.5), frames)
  np.testing.assert_array_equal(frames, before)


def test_an_unknown_clip_or_model_is_named_with_what_there_is(tmp_path, capsys):
  from oneadapt_jax import cli

  assert cli.main(["run", "--clip", "vtset", "--out", str(tmp_path)]) == 2
  assert "'vtset' is neither a bundled clip (bikes, carphone, bigbuckbunny, vtest)" in (
      capsys.readouterr().err)
  assert cli.main(["run", "--clip", "vtest", "--task", "keypoints", "--model",
                   "pedestrian_ssdlite", "--out", str(tmp_path)]) == 2
  assert "runs ['face_landmark', 'blazepose']" in capsys.readouterr().err
  assert not any(tmp_path.iterdir())  # nothing written
