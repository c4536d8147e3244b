"""The honest comparison: curves against curves (checked against brute force on hand-made
curves), and `oneadapt bench` end to end on its small config."""

import gc
import json

import numpy as np
import pytest

from oneadapt_jax import bench, configs, curves


def _run(method, label, accuracy, num_bytes, best=100.0, frames=10.0, gpu=None):
  accuracy, num_bytes = np.asarray(accuracy, float), np.asarray(num_bytes, float)
  return curves.Run(method, label, accuracy, num_bytes, np.full_like(num_bytes, best),
                    np.full_like(num_bytes, frames),
                    np.full_like(num_bytes, frames if gpu is None else gpu))


def test_frontier_keeps_exactly_the_points_nothing_beats():
  rng = np.random.default_rng(0)
  points = rng.uniform(0, 1, (40, 2))
  front = curves.frontier(points)
  brute = [p for p in points if not any((q[0] >= p[0]) and (q[1] <= p[1]) and
                                        ((q[0] > p[0]) or (q[1] < p[1])) for q in points)]
  assert sorted(map(tuple, front)) == sorted(map(tuple, brute))
  assert np.all(np.diff(front[:, 1]) >= 0) and np.all(np.diff(front[:, 0]) >= 0)


def test_interpolation_on_a_frontier_matches_the_hand_computed_line():
  front = curves.frontier([(0.6, 0.2), (0.9, 0.5), (0.5, 0.4)])  # (0.5, 0.4) is beaten
  assert front.tolist() == [[0.6, 0.2], [0.9, 0.5]]
  assert curves.cost_at(front, 0.8) == pytest.approx(0.2 + (0.8 - 0.6) / 0.3 * 0.3)
  assert curves.cost_at(front, 0.5) is None and curves.cost_at(front, 0.95) is None  # outside
  assert curves.cost_at(front, 0.6) == 0.2
  assert curves.accuracy_at(front, 0.35) == pytest.approx(0.75)
  assert curves.accuracy_at(front, 0.1) is None and curves.accuracy_at(front, 2.0) is None


def test_comparison_reads_saving_and_gain_at_their_points_with_paired_intervals():
  segments = 30
  ours = [_run("oneadapt", "a", [0.6] * segments, [20] * segments),
          _run("oneadapt", "b", [0.9] * segments, [50] * segments)]
  rng = np.random.default_rng(1)
  noisy = 0.8 + rng.normal(0, 0.05, segments)
  theirs = [_run("awstream", "x", noisy, [45] * segments)]
  result = curves.compare(ours, theirs, "bytes", resamples=300)
  accuracy = noisy.mean()
  expected_cost = 0.2 + (accuracy - 0.6) / 0.3 * 0.3
  assert result["mean_saving"] == pytest.approx(1 - expected_cost / 0.45)
  assert result["mean_gain"] == pytest.approx(0.6 + (0.45 - 0.2) / 0.3 * 0.3 - accuracy)
  low, high = result["mean_saving_ci"]
  assert low < result["mean_saving"] < high
  # Our curve is exact on every segment; theirs varies, so the interval is the one of their
  # mean accuracy mapped through our line: about 1.96 standard errors each side.
  half = 1.96 * noisy.std() / np.sqrt(segments) / 0.3 * 0.3 / 0.45
  assert high - low == pytest.approx(2 * half, rel=0.3)
  # Outside the stretch our curve spans nothing is read; identical segments give a degenerate
  # interval.
  beyond = curves.compare(ours, [_run("awstream", "x", [0.95] * segments, [15] * segments)],
                          "bytes", resamples=10)
  assert beyond["mean_saving"] is None and beyond["mean_gain"] is None
  assert beyond["mean_saving_ci"] is None
  assert (beyond["theirs_beaten"], beyond["ours_beaten"]) == (0, 2)  # 0.95 at 0.15 beats both
  flat = curves.compare(ours, [_run("awstream", "x", [0.75] * segments, [45] * segments)],
                        "bytes", resamples=50)
  assert flat["mean_saving_ci"][0] == pytest.approx(flat["mean_saving_ci"][1])


def _results(runs: dict, segments: int = 6) -> dict:
  """A hand-made `results.json`: `runs` maps (method, lambda) to (accuracy, bytes) held on every
  segment."""
  def record(method, lam, accuracy, num_bytes, segment):
    return {"method": method, "segment": segment, "config": {"qp": 30.0},
            "accuracy": accuracy, "bytes": num_bytes, "dnn_frames": 10, "backward_passes": 1,
            "profiling_frames": 0, "camera_encodes": 1, "lam": lam}
  return {"task": "detection", "source": "hand-made", "segments": segments,
          "warmup_segments": 0, "frames_per_segment": 10, "device": "cpu",
          "cost_model": {"backward_cost": 1.0, "spare_gpu_fps": 5.0},
          "best_bytes": {str(i): 100.0 for i in range(segments)}, "static": [],
          "runs": [{"method": m, "lambda": lam,
                    "per_segment": [record(m, lam, a, b, i) for i in range(segments)]}
                   for (m, lam), (a, b) in runs.items()]}


def test_a_sweep_of_variants_alone_still_reports_them_against_the_baselines():
  results = _results({("oneadapt[estimator=saliency]", 0.1): (0.6, 20.0),
                      ("oneadapt[estimator=saliency]", 1.0): (0.9, 50.0),
                      ("awstream", 0.1): (0.8, 45.0)})
  comparison = bench.compare_results(results, resamples=20)
  assert comparison["rows"] == []  # no default OneAdapt to compare
  (row,) = comparison["variants"]
  assert row["mean_gain"] == pytest.approx(0.6 + (45 - 20) / 30 * 0.3 - 0.8)
  text = bench.report(comparison | {"name": "hand-made", "cost_model": results["cost_model"]})
  assert "| oneadapt[estimator=saliency] | awstream |" in text
  assert f"{row['mean_gain'] * 100:+.1f} pts" in text


def test_comparison_refuses_runs_over_different_segments_and_unknown_axes():
  with pytest.raises(ValueError, match="different numbers"):
    curves.compare([_run("oneadapt", "a", [0.5] * 3, [1] * 3)],
                   [_run("x", "b", [0.5] * 4, [1] * 4)], "bytes")
  with pytest.raises(ValueError, match="axis"):
    curves.compare([], [], "joules")


def test_bench_configs_name_their_sweeps_and_refuse_unknown_names():
  for name in ("vtest-detection", "vtest-filter", "vtest-keypoints", "bikes", "carphone",
               "depth", "speech", "runlocal"):
    config = configs.get(f"bench:{name}")
    sweeps = bench.sweeps_of(config)
    assert "oneadapt" in sweeps and all(sweeps.values())
  assert all(t.target is not None for t in bench.sweeps_of(configs.get("bench:vtest-filter"))
             ["reducto"])
  calibrated = bench.sweeps_of(configs.get("bench:vtest-calibrated"))
  assert set(calibrated) == {"oneadapt[estimator=saliency,calibrate=true]",
                             "oneadapt[estimator=saliency,calibrate=true,proxy=gentle_count]",
                             "awstream", "chameleon", "oracle"}
  assert [t.lam for t in calibrated["oneadapt[estimator=saliency,calibrate=true]"]] == [
      0.01, 0.03, 0.1, 0.15, 0.2, 0.3, 1.0, 3.0, 10.0]
  with pytest.raises(ValueError, match="available"):
    configs.get("bench:nowhere")


@pytest.mark.slow  # 100 s on 2 cores
def test_bench_runs_every_method_compares_the_curves_and_resumes_without_resending(tmp_path):
  config = configs.get("bench:runlocal")
  comparison = bench.run_bench(config, tmp_path, progress=False)
  assert {row["theirs"] for row in comparison["rows"]} == {"awstream", "chameleon", "oracle",
                                                          "static"}
  for row in comparison["rows"]:
    assert len(row["saving"]) == len(row["points"]) == len(row["saving_ci"])
  # each variant against each baseline (here the default alone): the rows' comparison on bytes
  main = {row["theirs"]: row for row in comparison["rows"] if row["axis"] == "bytes"}
  assert {row["theirs"] for row in comparison["variants"]} == {"awstream", "chameleon", "static"}
  for row in comparison["variants"]:
    assert row["ours"] == "oneadapt" and row["axis"] == "bytes"
    assert (row["mean_saving"], row["mean_gain"], row["points"]) == (
        main[row["theirs"]]["mean_saving"], main[row["theirs"]]["mean_gain"],
        main[row["theirs"]]["points"])
  results = json.loads((tmp_path / "results.json").read_text())
  scored = results["segments"] - results["warmup_segments"]
  assert results["warmup_segments"] == 1
  for run in results["runs"]:  # the warm-up is left out of every total
    assert run["total"]["dnn_frames"] == sum(r["dnn_frames"] for r in run["per_segment"][1:])
    assert len(run["per_segment"]) == scored + 1
  cost = results["cost_model"]["backward_cost"]
  # the backward pass alone (its forward pass is inference's): it costs something
  assert cost == json.loads((tmp_path / "cost.json").read_text())["backward_cost"] > 0.0
  (oneadapt,) = [r for r in results["runs"] if r["method"] == "oneadapt"][:1]
  gpu = sum(r["dnn_frames"] + r["profiling_frames"] + r["backward_passes"] * cost
            for r in oneadapt["per_segment"][1:])
  assert oneadapt["total"]["gpu"] == pytest.approx(gpu)
  for name in ("report.md", "curves.png", "comparison.json"):
    assert (tmp_path / name).stat().st_size > 0
  assert "saving at matched accuracy" in (tmp_path / "report.md").read_text()
  sent = (tmp_path / "outcomes.jsonl").read_text()
  again = bench.run_bench(config, tmp_path, progress=False)
  assert (tmp_path / "outcomes.jsonl").read_text() == sent  # nothing sent twice
  assert again["rows"] == comparison["rows"]
  (tmp_path / "report.md").unlink()
  rewritten = bench.write_report(config, tmp_path)  # from results.json alone, nothing run
  assert rewritten["rows"] == comparison["rows"] and (tmp_path / "report.md").exists()


def test_difference_features_match_opencv_on_a_moving_square():
  cv2 = pytest.importorskip("cv2")
  from oneadapt_jax.workloads.video import _filter

  frames = np.full((3, 60, 80, 3), 90, np.uint8)
  frames[1, 10:30, 10:30] = 250  # a square appears
  frames[2, 10:30, 40:60] = 250  # and moves
  g = _filter.grey(frames)
  changed = (np.abs(g[1] - g[0]) > _filter.PIXEL_DELTA).astype(np.uint8)
  assert _filter.difference("pixel", g[1], g[0]) == pytest.approx(changed.mean())
  dilated = cv2.dilate(changed, np.ones((3, 3), np.uint8), iterations=2)
  _, _, stats, _ = cv2.connectedComponentsWithStats(dilated, connectivity=4)
  largest = stats[1:, cv2.CC_STAT_AREA].max() / changed.size
  assert _filter.difference("area", g[1], g[0]) == pytest.approx(largest)
  assert _filter.difference("edge", g[1], g[1]) == 0.0 < _filter.difference("edge", g[2], g[1])
  assert _filter.sent_frames("pixel", frames[[0, 0, 0]], 0.0).tolist() == [True, False, False]
  assert _filter.sent_frames("area", frames, 0.01).tolist() == [True, True, True]
  with pytest.raises(ValueError, match="available: pixel, area, edge"):
    _filter.sent_frames("colour", frames, 0.1)


def test_the_frame_filter_chain_sends_what_the_feature_decides_and_outcomes_persist(tmp_path):
  from oneadapt_jax import workloads
  from oneadapt_jax.workloads.video import _filter

  workload = workloads.build("video", source="carphone", max_segments=2, chain="frame_filter",
                             warmup=1)
  assert list(workload.knob.values) == ["frame_filter"] and workload.best == {"frame_filter": 0.0}
  assert workload.keep_outcomes(tmp_path / "outcomes.jsonl") == 0
  config = {"frame_filter": 0.02, "filter_feature": 1.0}
  outcome = workload.evaluate(1, config)
  sent = _filter.sent_frames("area", workload.segments[1].frames, 0.02)
  assert outcome.frames_sent == sent.sum() < len(sent)
  with (tmp_path / "outcomes.jsonl").open("a") as f:
    f.write('{"segment": 0, "conf')  # a kill mid-line
  again = workloads.build("video", source="carphone", max_segments=2, chain="frame_filter",
                          warmup=1)
  assert again.keep_outcomes(tmp_path / "outcomes.jsonl") == 1
  assert again.evaluate(1, config) == outcome
  other = workloads.build("video", source="carphone", max_segments=2, warmup=1)
  with pytest.raises(ValueError, match="outcomes of another workload"):
    other.keep_outcomes(tmp_path / "outcomes.jsonl")
  with pytest.raises(ValueError, match="leaves none to score"):
    workloads.build("video", source="carphone", max_segments=2, warmup=2)


def test_bench_command_names_the_configs_it_has(tmp_path, capsys):
  from oneadapt_jax import cli

  assert cli.main(["bench", "--config", "nowhere", "--out", str(tmp_path), "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert "unknown bench config 'nowhere'" in err and "vtest-detection" in err


def test_no_two_curves_of_a_plot_share_a_colour():
  """The methods', the static configurations' and the first ablations' colours are apart (RGB
  distance at least 0.2): a grey ablation once vanished among the grey static dots (0.18)."""
  import itertools

  from matplotlib import colors

  palette = [c for c, _ in bench.STYLE.values()] + list(bench.VARIANT_COLOURS)
  for a, b in itertools.combinations(palette, 2):
    assert np.linalg.norm(np.subtract(colors.to_rgb(a), colors.to_rgb(b))) >= 0.2, (a, b)


def test_interleaved_times_calls_each_in_turn_after_its_warm_up():
  calls = []
  times = bench.interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                  2, warmup=3)
  assert calls == ["a", "b"] * 5  # three warm-up rounds, then two timed ones
  assert [len(t) for t in times.values()] == [2, 2] and all(x >= 0 for x in times["a"])
  with pytest.raises(ValueError, match="warmup must be at least 1"):
    bench.interleaved_times({"a": lambda: None}, 2, warmup=0)
  with pytest.raises(ValueError, match="repeats must be at least 1"):
    bench.interleaved_times({"a": lambda: None}, 0)


def test_interleaved_times_holds_the_garbage_collector_off_while_timing():
  seen = []
  bench.interleaved_times({"a": lambda: seen.append(gc.isenabled())}, 3, warmup=2)
  assert seen == [True, True, False, False, False] and gc.isenabled()

  def fails():
    seen.append(gc.isenabled())
    if len(seen) > 1:
      raise RuntimeError("boom")

  seen.clear()
  with pytest.raises(RuntimeError, match="boom"):
    bench.interleaved_times({"a": fails}, 2)
  assert seen == [True, False] and gc.isenabled()  # restored when a call raises
  gc.disable()
  try:
    bench.interleaved_times({"a": lambda: None}, 2)
    assert not gc.isenabled()  # a caller's own setting is kept
  finally:
    gc.enable()
