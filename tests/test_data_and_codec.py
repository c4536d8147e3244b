"""Real clips (tfds, PyAV) and the real x264 encoder."""

import subprocess
import sys

import numpy as np
import pytest

import knobs
import models
from oneadapt_jax import codec, data


@pytest.fixture(scope="module")
def bikes():
  return data.clip_segments("bikes")[0]


@pytest.fixture(scope="module")
def carphone():
  return data.clip_segments("carphone")[0]


def test_bundled_clips_are_verified_and_segmented():
  expected = {"bikes": (272, 640, 10), "carphone": (144, 176, 4), "bigbuckbunny": (720, 1280, 5)}
  for name, (h, w, count) in expected.items():
    segments = data.clip_segments(name)
    assert len(segments) == count
    assert segments[0].frames.shape == (10, h, w, 3) and segments[0].frames.dtype == np.uint8
    assert segments[0].fps == 10.0 and segments[-1].index == count - 1


def test_tampered_asset_is_refused_naming_the_file(tmp_path, monkeypatch):
  monkeypatch.setenv(models._assets.CACHE_ENV, str(tmp_path))
  asset = data.CLIPS["carphone"]
  target = tmp_path / "files" / asset.name
  target.parent.mkdir(parents=True)
  target.write_bytes(b"not the clip")
  with pytest.raises(models.AssetIntegrityError, match=asset.name):
    models.asset_path(asset)
  target.unlink()
  with pytest.raises(models.AssetMissingError, match="oneadapt fetch"):
    models.asset_path(asset)


def test_tfds_builder_reads_segments_without_tensorflow():
  code = (
      "import sys, numpy as np\n"
      "from oneadapt_jax import tfds_video, data\n"
      "for clip in ('carphone', 'bikes', 'bigbuckbunny', 'vtest'):\n"
      "    source = tfds_video.data_source(clip)\n"
      "    direct = data.clip_segments(clip)\n"
      "    assert len(source) == len(direct), clip\n"
      "    for i in range(len(source)):\n"
      "        ex = source[i]\n"
      "        assert np.array_equal(ex['frames'], direct[int(ex['index'])].frames), clip\n"
      "        assert float(ex['fps']) == 10.0\n"
      "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
      "print('ok')\n")
  result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("stream", [False, True], ids=["decoded_at_once", "streamed"])
def test_from_video_errors_name_the_file(tmp_path, stream):
  def read(path):  # a streamed file may fail on the segment that is read, not before
    segments = data.from_video(path, stream=stream, progress=False)
    return [segments[-1] for _ in range(1)]

  missing = tmp_path / "nope.mp4"
  with pytest.raises(data.VideoError, match="nope.mp4: no such file"):
    read(missing)
  empty = tmp_path / "empty.mp4"
  empty.write_bytes(b"")
  with pytest.raises(data.VideoError, match="empty.mp4: the file is empty"):
    read(empty)
  text = tmp_path / "notes.mp4"
  text.write_text("this is not a video\n" * 50)
  with pytest.raises(data.VideoError, match="notes.mp4"):
    read(text)
  truncated = tmp_path / "truncated.mp4"
  truncated.write_bytes(data.clip_path("carphone").read_bytes()[:4000])
  with pytest.raises(data.VideoError, match="truncated.mp4"):
    read(truncated)


@pytest.mark.parametrize(("clip", "fps", "seconds"), [
    ("bikes", 10.0, 1.0), ("bikes", 30.0, 0.5), ("carphone", 10.0, 1.0),
    ("bigbuckbunny", 10.0, 1.0), ("vtest", 10.0, 1.0)])
def test_streamed_segments_equal_the_clip_decoded_at_once(clip, fps, seconds):
  # The reference: every frame decoded in one pass, resampled by timestamp, then cut.
  frames, out_fps = data.read_video(data.clip_path(clip), fps=fps, progress=False)
  eager = data.segment(frames, fps=out_fps, clip=clip, segment_seconds=seconds)
  streamed = data.ClipSegments(data.clip_path(clip), analysis_fps=fps, segment_seconds=seconds,
                               clip=clip)
  assert len(streamed) == len(eager) > 0
  order = list(range(len(eager)))  # in order (decoding forward), then shuffled (seeks)
  order += list(np.random.default_rng(0).permutation(len(eager))[:6])
  for i in order:
    got = streamed[int(i)]
    assert (got.index, got.fps, got.clip) == (eager[i].index, eager[i].fps, clip)
    np.testing.assert_array_equal(got.frames, eager[i].frames)
  view = streamed[1:4]
  assert len(view) == len(eager[1:4]) and view[0].index == 1
  np.testing.assert_array_equal(view[-1].frames, eager[1:4][-1].frames)


def test_read_video_is_the_same_whatever_frame_count_the_container_announces(monkeypatch):
  # read_video sizes its array by the container's count: a short count grows it, a long one is
  # trimmed, and the frames are the same; the reference is PyAV's frames stacked one by one.
  import av

  path = data.clip_path("carphone")
  with av.open(str(path)) as container:
    reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
  for announced in (None, 1, 7, len(reference), 3 * len(reference)):
    monkeypatch.setattr(av.video.stream.VideoStream, "frames", property(lambda _, n=announced: n))
    got, _ = data.read_video(path, progress=False)
    np.testing.assert_array_equal(got, reference)
    assert got.base is None or got.base.shape == got.shape  # no unused rows kept alive
  for room in (2, 1):  # a frame of another size, with room left and where the array would grow
    buffer = data._FrameBuffer(path, room)
    buffer.append(reference[0])
    with pytest.raises(data.VideoError, match="carphone.*frame 1 is 88x72, the frames before it "
                                              "176x144"):
      buffer.append(reference[1, ::2, ::2])


def test_streamed_clip_holds_a_bounded_number_of_segments():
  import tracemalloc  # numpy reports its allocations to tracemalloc

  segments = data.ClipSegments(data.clip_path("vtest"))  # 79 segments of 13 MB
  one = segments[0].frames.nbytes
  tracemalloc.start()
  try:
    for s in segments:
      assert s.frames.flags.writeable is False
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert len(segments) == 79
  assert peak < (data.ClipSegments.CACHE + 3) * one, (peak / one, "segments held at once")


def test_from_video_of_a_user_file_matches_the_bundled_segments(tmp_path):
  own = tmp_path / "mine.mp4"
  own.write_bytes(data.clip_path("carphone").read_bytes())
  segments = data.from_video(own, progress=False)
  assert segments[0].clip == "mine"
  np.testing.assert_array_equal(segments[2].frames, data.clip_segments("carphone")[2].frames)


def test_encode_round_trips_with_exact_bytes_and_is_deterministic(bikes):
  first = codec.encode(bikes.frames, qp=30)
  assert first.frames.shape == bikes.frames.shape and first.frames.dtype == np.uint8
  assert first.bitstream[:4] == b"\x00\x00\x00\x01"  # Annex-B start code
  codec._CACHE.clear()
  again = codec.encode(bikes.frames, qp=30)
  assert again.bitstream == first.bitstream
  before = codec.encodes_run()
  hit = codec.encode(bikes.frames, qp=30)  # cached by content: the bytes, decoded again
  assert codec.encodes_run() == before
  assert hit.bitstream == first.bitstream and hit.encoded_size == first.encoded_size
  np.testing.assert_array_equal(hit.frames, first.frames)
  np.testing.assert_array_equal(hit.sent, first.sent)


def test_bytes_fall_as_qp_rises_and_with_resolution_and_frame_rate(bikes):
  by_qp = [codec.encode(bikes.frames, qp=qp).num_bytes for qp in (20, 30, 40, 50)]
  assert by_qp == sorted(by_qp, reverse=True)
  by_res = [codec.encode(bikes.frames, qp=30, resolution=r).num_bytes for r in (0.25, 0.5, 1.0)]
  assert by_res == sorted(by_res)
  low = codec.encode(bikes.frames, qp=30, resolution=0.5)
  assert low.encoded_size == (136, 320) and low.frames.shape == bikes.frames.shape
  held = codec.encode(bikes.frames, qp=30, fps=5)
  assert held.frames_sent == 5 and held.num_bytes < by_qp[1]
  np.testing.assert_array_equal(held.frames[1], held.frames[0])
  np.testing.assert_array_equal(held.sent, codec.kept_frames(10, 0.5))


def test_frame_rate_rule_matches_the_knob(bikes):
  knob = knobs.frame_rate(source_fps=10.0)
  frames = np.broadcast_to(np.arange(10, dtype=np.float32)[:, None, None, None] / 10, (10, 2, 2, 3))
  for rung, rate in enumerate(knob.values):
    setting = np.float32(rung / (len(knob.values) - 1))
    held = np.asarray(knob.apply(setting, frames))[:, 0, 0, 0]
    sent = np.concatenate([[True], held[1:] != held[:-1]])
    np.testing.assert_array_equal(sent, codec.kept_frames(10, rate / 10.0))


def test_frame_filter_decisions_are_the_knobs_and_encode_sends_exactly_them(bikes):
  frames = bikes.as_float()
  knob = knobs.frame_filter()
  for rung, threshold in enumerate(knob.values):
    sent = np.asarray(knobs.frame_filter_sent(frames, float(threshold)))
    held = np.asarray(knob.apply(np.float32(rung / (len(knob.values) - 1)), frames))
    # A frame the knob does not send shows the last frame it did send.
    source = np.maximum.accumulate(np.where(sent, np.arange(10), 0))
    np.testing.assert_allclose(held, frames[source], atol=1e-6)
    encoded = codec.encode(bikes.frames, qp=30, sent=sent, preset="veryfast")
    np.testing.assert_array_equal(encoded.sent, sent)
    assert encoded.frames_sent == sent.sum()
  assert 1 < np.asarray(knobs.frame_filter_sent(frames, 0.1)).sum() < 10  # bikes: some frames


def test_roi_blocks_at_lower_qp_get_more_bytes_and_less_error(bikes):
  grid = (17, 40)
  flat = codec.encode(bikes.frames, qp=35, roi_qp=np.full(grid, 35.0))
  roi_map = np.full(grid, 35.0)
  roi_map[:, :20] = 25.0
  roi = codec.encode(bikes.frames, qp=35, roi_qp=roi_map)
  assert roi.num_bytes > 1.5 * flat.num_bytes

  def error(e, cols):
    return np.abs(e.frames[:, :, cols].astype(float) - bikes.frames[:, :, cols]).mean()

  assert error(roi, slice(0, 320)) < 0.85 * error(flat, slice(0, 320))
  assert error(roi, slice(320, 640)) == pytest.approx(error(flat, slice(320, 640)), rel=0.1)


def test_encode_rejects_bad_settings(bikes):
  for kwargs, message in [({"qp": 60}, "qp"), ({"resolution": 0.0}, "resolution"),
                          ({"fps": 20}, "fps"), ({"roi_qp": np.full((3,), 30.0)}, "2-D")]:
    with pytest.raises(ValueError, match=message):
      codec.encode(bikes.frames, **kwargs)
  with pytest.raises(ValueError, match="not both"):
    codec.encode(bikes.frames, fps=5, sent=np.ones(10, bool))
  with pytest.raises(ValueError, match="sent must be bool"):
    codec.encode(bikes.frames, sent=np.ones(9, bool))
  with pytest.raises(ValueError, match="first frame"):
    codec.encode(bikes.frames, sent=np.arange(10) > 0)
  with pytest.raises(ValueError, match="NaN"):
    codec.encode(np.full((2, 32, 32, 3), np.nan, np.float32))
  with pytest.raises(ValueError, match="empty"):
    codec.encode(np.zeros((0, 32, 32, 3), np.uint8))


def test_bracket_gives_the_neighbouring_rungs():
  assert codec.bracket(5, 0.6) == (0.5, 0.75)
  assert codec.bracket(5, 0.75) == (0.75, 0.75)
  assert codec.bracket(5, 1.0) == (1.0, 1.0)


def test_the_encode_cache_is_bounded_in_bytes(bikes, monkeypatch):
  sizes = {qp: codec.encode(bikes.frames, qp=qp, cache=False).num_bytes for qp in (41, 42, 43, 44)}
  codec._CACHE.clear()
  monkeypatch.setattr(codec, "CACHE_BYTES", sizes[43] + sizes[44])
  for qp in sizes:
    codec.encode(bikes.frames, qp=qp)
  assert len(codec._CACHE) == 2  # the two most recent: it holds bitstreams, not frames
  assert sum(len(item[0]) for item in codec._CACHE.values()) == sizes[43] + sizes[44]
  before = codec.encodes_run()
  codec.encode(bikes.frames, qp=44)  # still held
  assert codec.encodes_run() == before
