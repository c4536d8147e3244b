"""The baselines' decision rules on a synthetic workload whose accuracy and bytes are known.

`Synthetic.evaluate` replaces x264 and the model with closed forms, so every choice a baseline
makes can be checked against a brute-force search written here.
"""


import numpy as np
import pytest

import knobs
from oneadapt_jax import baselines, report
from oneadapt_jax.core import Outcome, Tradeoff, WorkloadBase
from oneadapt_jax.workloads.video import VideoWorkload, knob_chain


class Synthetic(WorkloadBase):
  """Accuracy rises with resolution, QP quality and frame rate; from `shift` on, the content
  gets harder (small resolutions lose accuracy). Bytes grow with all three. The grid and the
  ladders are the video workload's."""

  kind, task, source = "synthetic", "detection", "synthetic"
  frames_per_segment = 10
  qp_stride = 3
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


def test_awstream_holds_the_best_pareto_point_of_its_profile():
  workload = Synthetic()
  tradeoff = Tradeoff(lam=1.0)
  records = baselines.awstream(workload, tradeoff, profile_segments=2)
  configs = workload.grid()
  best = max(configs, key=lambda c: _score(workload, tradeoff, c, [0, 1]))
  assert all(r.config == best for r in records)
  assert [r.profiling_frames for r in records] == [10 * len(configs)] * 2 + [0] * 6


def test_chameleon_searches_one_knob_at_a_time_and_waits_for_its_profile():
  workload = Synthetic(num_segments=12, shift=4)
  tradeoff = Tradeoff(lam=0.5)
  records = baselines.chameleon(workload, tradeoff, period=4, spare_gpu_fps=40.0)
  # Segment 0: coordinate search from the best configuration, in effect at once.
  configs = workload.grid()
  current = workload.best
  for name in ("resolution", "qp", "frame_rate"):
    options = [{**current, name: v} for v in sorted({c[name] for c in configs})]
    current = max(options, key=lambda c: _score(workload, tradeoff, c, [0]))
  assert records[0].config == current
  # Re-profiled on segment 4 (harder content): 6 resolutions, then 5 new QPs, then 1 new frame
  # rate = 12 configurations x 10 frames; at 40 frames/s of spare GPU that lands 3 s later.
  assert records[4].profiling_frames == 10 * 12
  assert all(r.config == current for r in records[:7])
  assert records[7].config != current
  assert records[7].config["resolution"] > current["resolution"]
  assert records[8].profiling_frames > 0  # the next profile starts once the last has landed


def test_reducto_keeps_the_largest_threshold_that_meets_its_target():
  workload = Synthetic()
  records = baselines.reducto(workload, None, target=0.75)
  thresholds = [r.config["frame_filter"] for r in records]
  assert len(set(thresholds)) == 1
  chosen = thresholds[0]
  assert workload.evaluate(0, {**workload.best, "frame_filter": chosen}).accuracy >= 0.75
  larger = [t for t in knobs.frame_filter().values if t > chosen]
  assert all(workload.evaluate(0, {**workload.best, "frame_filter": float(t)}).accuracy < 0.75
             for t in larger)
  assert records[0].profiling_frames == 10 and records[1].profiling_frames == 0


def test_pareto_keeps_only_undominated_points():
  points = [(0.9, 100, "a"), (0.8, 120, "b"), (0.95, 200, "c"), (0.5, 50, "d")]
  assert {p[2] for p in baselines.pareto(points)} == {"a", "c", "d"}


def test_tradeoff_is_a_lambda_or_a_budget():
  with pytest.raises(ValueError, match="exactly one"):
    Tradeoff()
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
