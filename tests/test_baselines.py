"""The baselines' decision rules on a synthetic workload whose accuracy and bytes are known.

`Synthetic.evaluate` replaces x264 and the model with closed forms, so every choice a baseline
makes can be checked against a brute-force search written here.
"""


import json

import numpy as np
import pytest

import knobs
from oneadapt_jax import baselines, report
from oneadapt_jax.core import CostModel, Outcome, Record, Tradeoff, WorkloadBase
from oneadapt_jax.workloads.video import FILTER_FEATURES, VideoWorkload, knob_chain


class Synthetic(WorkloadBase):
  """Accuracy rises with resolution, QP quality and frame rate; from `shift` on, the content
  gets harder (small resolutions lose accuracy). Bytes grow with all three. The grid and the
  ladders are the video workload's."""

  kind, task, source = "synthetic", "detection", "synthetic"
  frames_per_segment = 10
  qp_stride = 3
  chain = "encoding"
  grid = VideoWorkload.grid

  def __init__(self, num_segments=8, shift=4):
    self.segments = [None] * num_segments
    self.shift = shift
    self.knob = knob_chain()
    self.extra_knobs = {"frame_filter": knobs.frame_filter()}
    self.calls = 0

  def observe(self, index, config):
    self.calls += 1
    hard = 3.0 if index >= self.shift else 1.0
    quality = (50 - config["qp"]) / 30
    accuracy = 1 - 0.3 * hard * (1 - config["resolution"]) ** 2 - 0.2 * (1 - quality) ** 2 \
        - 0.1 * (1 - config["frame_rate"] / 10)
    threshold = config.get("frame_filter")
    frames = 10 if threshold is None else int(10 * (1 - threshold))
    accuracy -= 0.5 * (10 - frames) / 10 if threshold is not None else 0.0
    num_bytes = int(20000 * config["resolution"] ** 2 * 2 ** ((20 - config["qp"]) / 6)
                    * (0.5 + 0.5 * config["frame_rate"] / 10) * frames / 10)
    return None, self.remember(index, config,
                               Outcome(float(np.clip(accuracy, 0, 1)), max(num_bytes, 1), frames))


def _score(workload, tradeoff, config, segments):
  acc = np.mean([workload.evaluate(i, config).accuracy for i in segments])
  byt = np.mean([workload.evaluate(i, config).bytes for i in segments])
  best = np.mean([workload.best_bytes(i) for i in segments])
  return tradeoff.score(acc, byt, best)


def test_grid_spans_every_resolution_the_best_qp_and_the_grid_frame_rates():
  configs = Synthetic().grid()
  assert len(configs) == 6 * 6 * 2
  assert Synthetic().best in configs
  assert {c["qp"] for c in configs} == {20.0, 26.0, 32.0, 38.0, 44.0, 50.0}
  assert {c["frame_rate"] for c in configs} == {5.0, 10.0}


@pytest.mark.parametrize("tradeoff", [Tradeoff(lam=0.3), Tradeoff(lam=3.0), Tradeoff(budget=4000)])
def test_oracle_is_the_per_segment_argmax(tradeoff):
  workload = Synthetic()
  records = baselines.oracle(workload, tradeoff)
  configs = workload.grid()
  for record in records:
    best = max(configs, key=lambda c: _score(workload, tradeoff, c, [record.segment]))
    assert record.config == best
    assert record.profiling_frames == 10 * (len(configs) - 1)


def _frontier(workload, configs, segments):
  """Brute force: the configurations no other beats on mean accuracy and bytes, cheapest first."""
  stats = {json.dumps(c, sort_keys=True): (
      np.mean([workload.evaluate(i, c).accuracy for i in segments]),
      np.mean([workload.evaluate(i, c).bytes for i in segments])) for c in configs}
  keep = [c for c in configs if not any(
      o[0] >= stats[json.dumps(c, sort_keys=True)][0] and o[1] <= stats[json.dumps(c, sort_keys=True)][1]
      and o != stats[json.dumps(c, sort_keys=True)] for o in stats.values())]
  return sorted(keep, key=lambda c: stats[json.dumps(c, sort_keys=True)][1])


def test_awstream_starts_on_the_best_point_of_its_offline_profile_of_the_warmup():
  workload = Synthetic(num_segments=8, shift=100)  # no drift within the horizon
  workload.warmup_segments = 2
  tradeoff = Tradeoff(lam=1.0)
  records = baselines.awstream(workload, tradeoff, cost=CostModel(spare_gpu_fps=1e4))
  configs = workload.grid()
  best = max(configs, key=lambda c: _score(workload, tradeoff, c, [0, 1]))
  assert records[2].config == best
  assert [r.profiling_frames for r in records[:2]] == [10 * len(configs)] * 2
  # Online: the frontier points within two of the current one, profiled on the segment at hand
  # (counted here from a brute-force frontier), never the whole grid while nothing drifts.
  front = _frontier(workload, configs, [0, 1])
  at = front.index(best)
  assert records[2].profiling_frames == 10 * len(front[max(0, at - 2):at + 3])
  assert all(0 < r.profiling_frames < 10 * len(configs) for r in records[2:])


def test_awstream_reprofiles_the_whole_grid_when_accuracy_drifts_and_waits_for_it():
  workload = Synthetic(num_segments=40, shift=12)
  workload.warmup_segments = 2
  tradeoff = Tradeoff(lam=1.0)
  cost = CostModel(spare_gpu_fps=100.0)
  records = baselines.awstream(workload, tradeoff, cost=cost)
  grid = 10 * len(workload.grid())
  full = [r.segment for r in records[2:] if r.profiling_frames == grid]
  assert full and full[0] > 12  # only once the content has changed
  start = full[0]
  lands = start + cost.delay(grid, 1.0)
  assert lands == start + 8  # 720 frames at 100 frames/s
  best = max(workload.grid(), key=lambda c: _score(workload, tradeoff, c, [start]))
  assert records[lands].config == best
  assert all(r.config == records[start].config for r in records[start:lands])
  assert best["resolution"] > records[2].config["resolution"]  # harder content needs more


def _coordinate_search(workload, tradeoff, start, segment):
  """Brute force of Chameleon's leader: each knob over its grid values, the others held."""
  configs = workload.grid()
  current, seen = dict(start), []
  for name in ("resolution", "qp", "frame_rate"):
    options = [{**current, name: v} for v in sorted({c[name] for c in configs})]
    seen += [o for o in options if o not in seen]
    current = max(options, key=lambda c: _score(workload, tradeoff, c, [segment]))
  return current, seen


def test_chameleon_leads_with_a_knob_at_a_time_search_then_follows_with_its_top_k():
  workload = Synthetic(num_segments=12, shift=6)
  tradeoff = Tradeoff(lam=0.5)
  records = baselines.chameleon(workload, tradeoff, cost=CostModel(spare_gpu_fps=1e4), top_k=3,
                                followers=2)
  # Profiles back to back, each landing on the next segment: leader, 2 followers, leader ...
  choice, seen = _coordinate_search(workload, tradeoff, workload.best, 0)
  assert records[0].profiling_frames == 10 * len(seen)
  assert records[1].config == choice
  top = sorted(seen, key=lambda c: _score(workload, tradeoff, c, [0]), reverse=True)
  top = [choice] + [c for c in top if c != choice][:2]
  for segment in (1, 2):
    assert records[segment].profiling_frames == 10 * 3
    follower = max(top, key=lambda c: _score(workload, tradeoff, c, [segment]))
    assert records[segment + 1].config == follower
    top = sorted(top, key=lambda c: _score(workload, tradeoff, c, [segment]), reverse=True)
  leader, seen = _coordinate_search(workload, tradeoff, records[3].config, 3)
  assert records[3].profiling_frames == 10 * len(seen)
  assert records[4].config == leader


def test_chameleon_waits_for_its_profile_and_starts_the_next_when_it_lands():
  workload = Synthetic(num_segments=12, shift=4)
  tradeoff = Tradeoff(lam=0.5)
  cost = CostModel(spare_gpu_fps=40.0)
  records = baselines.chameleon(workload, tradeoff, cost=cost)
  choice, seen = _coordinate_search(workload, tradeoff, workload.best, 0)
  delay = cost.delay(10 * len(seen), 1.0)
  assert delay == 3  # 12 configurations x 10 frames at 40 frames/s
  assert all(r.config == workload.best for r in records[:delay])
  assert records[delay].config == choice
  assert [r.segment for r in records if r.profiling_frames] [:2] == [0, delay]


class FilterSynthetic(WorkloadBase):
  """Reducto's world in closed form. Content `A` changes little, `B` a lot; each difference
  feature sees it differently, and the edge feature drops the frames that matter least."""

  kind, task, source = "synthetic", "detection", "filtered"
  frames_per_segment = 10
  filter_feature_names = FILTER_FEATURES
  WEIGHT = {0: 0.5, 1: 0.3, 2: 0.1}  # accuracy lost per dropped frame fraction, per feature

  def __init__(self, contents, warmup):
    self.contents = contents
    self.segments = [None] * len(contents)
    self.warmup_segments = warmup
    self.knob = knobs.chain(frame_filter=knobs.frame_filter())
    self.extra_knobs = {}

  def filter_features(self, index, feature):
    content = self.contents[index]
    base = {"A": 0.01, "a": 0.012, "B": 0.5}[content]
    scale = {"pixel": 1.0, "area": 2.0, "edge": 0.5}[feature]
    return np.linspace(base, 2 * base, 9) * scale

  def observe(self, index, config):
    feature = int(config.get("filter_feature", 0))
    values = self.filter_features(index, FILTER_FEATURES[feature])
    sent = 1 + int(np.sum(values > config["frame_filter"]))
    accuracy = 1 - self.WEIGHT[feature] * (10 - sent) / 9
    return None, self.remember(index, config, Outcome(accuracy, 100 * sent, sent))


def _unfiltered(config):
  return config.get("frame_filter", 0.0) == 0.0 and "filter_feature" not in config


def _direct_label(workload, segment, feature, target, candidates):
  """Brute force: the largest candidate threshold whose accuracy meets the target."""
  meeting = [t for t in candidates if workload.evaluate(
      segment, {"frame_filter": t, "filter_feature": float(feature)}).accuracy >= target]
  return max(meeting, default=0.0)


def test_reducto_looks_its_threshold_up_from_the_profiled_segments_nearest_to_the_new_one():
  workload = FilterSynthetic(["A", "a", "A", "B", "B", "a"], warmup=2)
  target = 0.95
  records = baselines.reducto(workload, Tradeoff(target=target), neighbours=1)
  edge = FILTER_FEATURES.index("edge")
  values = np.concatenate([workload.filter_features(i, "edge") for i in (0, 1)])
  candidates = {0.0, *np.round(np.quantile(values, np.linspace(0.3, 1.0, 7)), 5)}
  # The bootstrap is sent unfiltered; the edge feature drops the most frames at the target.
  assert all(_unfiltered(r.config) for r in records[:2])
  assert records[2].config["filter_feature"] == edge
  assert records[2].config["frame_filter"] == _direct_label(workload, 0, edge, target, candidates)
  # B is new content: sent unfiltered and learned, then looked up when it comes again.
  assert _unfiltered(records[3].config)
  assert records[4].config["frame_filter"] == _direct_label(workload, 3, edge, target,
                                                            candidates)
  assert records[5].config["frame_filter"] == _direct_label(workload, 1, edge, target,
                                                            candidates)
  assert all(r.profiling_frames == 0 for r in records)  # profiling is the unfiltered inference
  assert records[2].dnn_frames < 10 and records[2].accuracy >= target


def test_reducto_takes_its_target_from_the_tradeoff():
  workload = FilterSynthetic(["A", "a", "A", "A"], warmup=2)
  loose = baselines.reducto(workload, Tradeoff(target=0.7))
  strict = baselines.reducto(workload, Tradeoff(target=0.99))
  assert loose[3].dnn_frames < strict[3].dnn_frames
  assert strict[3].accuracy >= 0.99 and loose[3].accuracy >= 0.7


def test_the_cost_model_counts_every_forward_equivalent_and_delays_by_spare_frames():
  cost = CostModel(backward_cost=2.5, spare_gpu_fps=40.0)
  record = Record("x", 0, {}, 1.0, 10, dnn_frames=10, backward_passes=2, profiling_frames=30)
  assert cost.gpu(record) == 10 + 30 + 2 * 2.5
  assert cost.delay(120, 1.0) == 3 and cost.delay(121, 1.0) == 4 and cost.delay(1, 1.0) == 1
  assert cost.delay(120, 0.5) == 6  # half-second segments
  with pytest.raises(ValueError, match="spare_gpu_fps"):
    CostModel(spare_gpu_fps=0.0)
  # Summaries leave the warm-up out of every figure and report its profiling beside them.
  workload = Synthetic(num_segments=6, shift=100)
  workload.warmup_segments = 2
  records = baselines.awstream(workload, Tradeoff(lam=1.0), cost=cost)
  total = report.summarise(records, workload, None, cost)
  scored = records[2:]
  assert total["gpu"] == sum(r.dnn_frames + r.profiling_frames for r in scored)
  assert total["warmup_profiling_frames"] == 2 * 10 * len(workload.grid())
  assert total["accuracy"] == pytest.approx(np.mean([r.accuracy for r in scored]))


def test_pareto_keeps_only_undominated_points():
  points = [(0.9, 100, "a"), (0.8, 120, "b"), (0.95, 200, "c"), (0.5, 50, "d")]
  assert {p[2] for p in baselines.pareto(points)} == {"a", "c", "d"}


def test_tradeoff_is_a_lambda_a_budget_or_a_target():
  with pytest.raises(ValueError, match="exactly one"):
    Tradeoff()
  with pytest.raises(ValueError, match="exactly one"):
    Tradeoff(lam=1.0, target=0.9)
  with pytest.raises(ValueError, match="target"):
    Tradeoff(target=1.5)
  target = Tradeoff(target=0.9)
  assert target.score(0.91, 500, 1000) > target.score(0.95, 600, 1000)  # meeting it, cheapest
  assert target.score(0.85, 900, 1000) > target.score(0.80, 100, 1000)  # else most accurate
  for t in (Tradeoff(lam=0.3), Tradeoff(budget=1200.0), target):
    assert Tradeoff.parse(t.label) == t
  with pytest.raises(ValueError, match="exactly one"):
    Tradeoff(lam=1.0, budget=10.0)
  with pytest.raises(ValueError, match="lambda"):
    Tradeoff(lam=float("nan"))
  with pytest.raises(ValueError, match="budget"):
    Tradeoff(budget=-5.0)
  budget = Tradeoff(budget=100.0)
  assert budget.score(0.5, 90, 1000) > budget.score(0.9, 110, 1000)  # fitting comes first
  assert budget.score(0.1, 150, 1000) > budget.score(0.9, 200, 1000)  # else the cheapest


def test_compare_reads_oneadapt_at_matched_accuracy_and_bytes():
  def run(method, lam, accuracy, num_bytes, frames=40):
    return {"method": method, "lambda": lam, "budget": None,
            "total": {"accuracy": accuracy, "bytes": num_bytes, "dnn_frames": frames,
                      "profiling_frames": 0 if method == "oneadapt" else 100}}
  runs = [run("oneadapt", 0.1, 0.95, 800), run("oneadapt", 1.0, 0.80, 400),
          run("awstream", 0.1, 0.96, 1000), run("chameleon", 0.1, 0.50, 300)]
  rows = {r["baseline"]: r for r in report.compare(runs)}
  assert rows["awstream"]["bytes_ratio_at_matched_accuracy"] == pytest.approx(0.8)
  assert rows["awstream"]["accuracy_gain_at_matched_bytes"] == pytest.approx(-0.01)
  assert rows["awstream"]["gpu_frames_ratio_at_matched_accuracy"] == pytest.approx(40 / 140)
  assert rows["chameleon"]["bytes_ratio_at_matched_accuracy"] == pytest.approx(400 / 300)
  assert rows["chameleon"]["accuracy_gain_at_matched_bytes"] is None


def test_versus_static_finds_the_best_fixed_configuration_around_oneadapts_point():
  runs = [{"method": "oneadapt", "lambda": 0.3, "budget": None,
           "total": {"accuracy": 0.9, "bytes": 500}}]
  static = [{"total": {"accuracy": a, "bytes": b}}
            for a, b in [(0.95, 900), (0.89, 700), (0.85, 450), (0.6, 100)]]
  (row,) = report.versus_static(runs, static)
  assert row["best_static_accuracy_at_these_bytes"] == 0.85
  assert row["least_static_bytes_at_this_accuracy"] == 700
