"""Per-macroblock quality: the `roi` chain's configurations, DDS's region rule against brute
force, its choice on a synthetic workload, and its two passes against the real encoder."""

import json

import numpy as np
import pytest

import knobs
import models
from oneadapt_jax import baselines, codec
from oneadapt_jax.core import Outcome, Tradeoff, WorkloadBase, config_key, config_of
from oneadapt_jax.workloads.video import ROI_QPS, _regions, knob_chain


def _detections(rng, count, size):
  height, width = size
  x0, y0 = rng.uniform(-10, width, count), rng.uniform(-10, height, count)
  w, h = rng.uniform(1, width / 2, count), rng.uniform(1, height / 2, count)
  return models.Detections(np.stack([x0, y0, x0 + w, y0 + h], 1), rng.uniform(0, 1, count),
                           np.zeros((count, 0, 2)))


@pytest.mark.parametrize("seed", range(5))
def test_regions_to_query_are_the_uncertain_candidates_small_enough(seed):
  rng = np.random.default_rng(seed)
  size = (75, 131)
  found = _detections(rng, 30, size)
  expected = [box for box, score in zip(found.boxes, found.scores)
              if 0.3 <= score < 0.8 and (box[2] - box[0]) * (box[3] - box[1]) <= 0.3 * 75 * 131]
  np.testing.assert_array_equal(_regions.regions_to_query(found, size),
                                np.reshape(expected, (-1, 4)))


@pytest.mark.parametrize("seed", range(5))
def test_macroblock_mask_marks_the_blocks_a_box_overlaps(seed):
  rng = np.random.default_rng(seed)
  size = (75, 131)  # odd: the last row and column of blocks are partial
  boxes = _detections(rng, 4, size).boxes
  mask = _regions.macroblock_mask(boxes, size)
  assert mask.shape == (5, 9)
  for r in range(5):
    for c in range(9):
      y0, y1 = r * 16, min((r + 1) * 16, 75)
      x0, x1 = c * 16, min((c + 1) * 16, 131)
      overlaps = any(min(b[2], x1) > max(b[0], x0) and min(b[3], y1) > max(b[1], y0)
                     for b in boxes)
      assert mask[r, c] == overlaps, (r, c)
  pixels = _regions.pixel_mask(mask, size)
  assert pixels.shape == size and pixels[16 * 4, 16 * 8] == mask[4, 8]


def test_merge_keeps_the_second_pass_and_the_confident_first_pass_boxes_it_misses():
  second = models.Detections(np.array([[0.0, 0, 10, 10]]), np.array([0.6]), np.zeros((1, 0, 2)))
  first = models.Detections(np.array([[1.0, 1, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]]),
                            np.array([0.9, 0.85, 0.5]), np.zeros((3, 0, 2)))
  merged = _regions.merge(second, first)
  # the first overlaps the second pass's box; the third is not confident
  np.testing.assert_array_equal(merged, [[0, 0, 10, 10], [50, 50, 60, 60]])


def test_a_per_block_setting_becomes_a_map_and_a_uniform_map_keys_as_its_value():
  knob = knobs.chain(roi_quality=knobs.roi_quality((40, 50), values=ROI_QPS))
  setting = {"roi_quality": np.full((3, 4), 0.0, np.float32)}
  setting["roi_quality"][1, 2] = 0.9  # rounds up to the best rung
  config = config_of(knob, setting)
  qps = np.asarray(config["roi_quality"])
  assert qps.shape == (3, 4) and qps[1, 2] == 24.0 and np.sum(qps == 42.0) == 11
  again = json.loads(json.dumps(config))  # lists, as records.jsonl gives them back
  assert config_key(again) == config_key(config)
  assert config_key({"roi_quality": [[36.0] * 4] * 3}) == config_key({"roi_quality": 36.0})


class TwoQualities(WorkloadBase):
  """DDS's candidates with closed-form outcomes: a lower first-pass QP is cheaper and, from
  `shift` on, less accurate; the second pass costs `resend` bytes."""

  kind, task, source = "synthetic", "detection", "synthetic"
  frames_per_segment = 10

  def __init__(self, num_segments=6, warmup=3, shift=10):
    self.segments = [None] * num_segments
    self.warmup_segments, self.shift = warmup, shift
    self.knob = knobs.chain(roi_quality=knobs.roi_quality((32, 32), values=ROI_QPS))
    self.extra_knobs = {"requery_qp": knobs.quantization(values=ROI_QPS)}

  def observe(self, index, config):
    low = float(np.asarray(config["roi_quality"]).max())
    harder = 2.0 if index >= self.shift else 1.0
    accuracy = 1.0 - harder * 0.002 * (low - 24) ** 1.5
    num_bytes = int(10000 * 2 ** ((24 - low) / 6))
    frames = 10
    if "requery_qp" in config:
      num_bytes, frames, accuracy = num_bytes + 1500, 14, min(1.0, accuracy + 0.05)
    return None, self.remember(index, config, Outcome(accuracy, num_bytes, frames))


@pytest.mark.parametrize("lam", [0.05, 0.3, 1.0, 3.0])
def test_dds_picks_the_low_quality_that_suits_the_tradeoff_on_the_warmup_and_holds_it(lam):
  workload = TwoQualities(shift=4)
  tradeoff = Tradeoff(lam=lam)
  records = baselines.dds(workload, tradeoff)
  warm = range(3)
  best_bytes = np.mean([workload.best_bytes(i) for i in warm])

  def utility(low):
    outcomes = [workload.evaluate(i, {"roi_quality": low, "requery_qp": 24.0}) for i in warm]
    return np.mean([o.accuracy for o in outcomes]) - lam * np.mean(
        [o.bytes for o in outcomes]) / best_bytes

  chosen = max(ROI_QPS[:-1], key=utility)
  assert all(r.config == {"roi_quality": chosen, "requery_qp": 24.0} for r in records)
  assert [r.profiling_frames for r in records] == [28, 28, 28, 0, 0, 0]
  assert all(r.dnn_frames == 14 and r.camera_encodes == 2 for r in records)


def test_dds_needs_the_roi_chain_and_says_so():
  encoding = TwoQualities()
  encoding.knob, encoding.extra_knobs = knob_chain(), {}
  why = baselines.METHODS["dds"].why_not(encoding)
  assert "roi_quality" in why and "requery_qp" in why and "resolution" in why
  assert baselines.METHODS["dds"].why_not(TwoQualities()) is None


@pytest.fixture(scope="module")
def carphone_roi():
  from oneadapt_jax.workloads.video import build

  return build(task="detection", source="carphone", max_segments=2, chain="roi")


def test_the_two_passes_cost_both_real_encodes_and_a_forward_pass_per_frame_asked(carphone_roi):
  workload = carphone_roi
  config = {"roi_quality": 42.0, "requery_qp": 24.0}
  boxes, outcome = workload.observe(1, config)
  frames = workload.segments[1].frames
  size = workload.segments[1].size
  grid = (-(-size[0] // 16), -(-size[1] // 16))
  first = codec.encode(frames, qp=42.0, roi_qp=np.full(grid, 42.0), preset=workload.preset)
  outputs = workload._infer(first.as_float())
  masks = []
  for t in range(len(frames)):
    found = workload.spec.candidates(workload.model, {k: np.asarray(v[t]) for k, v in
                                                      outputs.items()}, size, 0.3)
    masks.append(_regions.macroblock_mask(_regions.regions_to_query(found, size), size))
  masks = np.stack(masks)
  asked = int(masks.any(axis=(1, 2)).sum())
  assert asked > 0  # carphone's face is never sure at QP 42
  pixels = np.stack([_regions.pixel_mask(m, size) for m in masks])[..., None]
  second = codec.encode(np.where(pixels, frames, 0).astype(np.uint8), qp=24.0,
                        roi_qp=np.full(grid, 24.0), preset=workload.preset)
  assert outcome.bytes == first.num_bytes + second.num_bytes
  assert outcome.frames_sent == len(frames) + asked
  assert len(boxes) == len(frames) and 0.0 <= outcome.accuracy <= 1.0
  # asking again at the best QP is worth it: at least the first pass's accuracy
  assert outcome.accuracy >= workload.evaluate(1, {"roi_quality": 42.0}).accuracy


def test_a_per_macroblock_map_is_sent_with_x264_roi_offsets(carphone_roi):
  workload = carphone_roi
  grid = workload.roi_map(36.0).shape
  qps = np.full(grid, 42.0)
  qps[2:6, 3:8] = 24.0
  outcome = workload.evaluate(0, {"roi_quality": qps.tolist()})
  direct = codec.encode(workload.segments[0].frames, qp=42.0, roi_qp=qps, preset=workload.preset)
  assert outcome.bytes == direct.num_bytes
  low, high = (workload.evaluate(0, {"roi_quality": q}).bytes for q in (42.0, 24.0))
  assert low < outcome.bytes < high
  with pytest.raises(ValueError, match="macroblock"):
    workload.evaluate(0, {"roi_quality": [[24.0, 42.0]]})
  with pytest.raises(ValueError, match="ladder"):
    workload.evaluate(0, {"roi_quality": 33.0})
