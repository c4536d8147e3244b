"""The controller and baselines on real encodes (small: two carphone segments)."""

import json

import numpy as np
import pytest

from oneadapt_jax import adapt, cli


def test_pareto_keeps_only_undominated_points():
  points = [(0.9, 100, "a", 0), (0.8, 120, "b", 0), (0.95, 200, "c", 0), (0.5, 50, "d", 0)]
  assert {p[2] for p in adapt.pareto(points)} == {"a", "c", "d"}


def test_run_records_every_method_and_resumes_without_recomputing(tmp_path, capsys):
  args = ["run", "--clip", "carphone", "--max-segments", "2", "--lambda", "0.3", "--out",
          str(tmp_path), "--no-progress"]
  assert cli.main(args + ["--methods", "oneadapt"]) == 0
  log = tmp_path / "records.jsonl"
  assert len(log.read_text().splitlines()) == 1
  first = json.loads((tmp_path / "results.json").read_text())
  # An interrupted sweep goes on where it stopped: oneadapt is not run again.
  assert cli.main(args + ["--methods", "oneadapt", "awstream"]) == 0
  assert len(log.read_text().splitlines()) == 2
  results = json.loads((tmp_path / "results.json").read_text())
  by_method = {r["method"]: r for r in results["runs"]}
  assert by_method["oneadapt"] == first["runs"][0]
  for run in results["runs"]:
    for record in run["per_segment"]:
      assert 0.0 <= record["accuracy"] <= 1.0 and record["bytes"] > 0
      assert record["dnn_frames"] == 10
  oneadapt_segments = by_method["oneadapt"]["per_segment"]
  assert all(r["backward_passes"] == 10 for r in oneadapt_segments)
  assert oneadapt_segments[0]["resolution"] == 1.0 and oneadapt_segments[0]["qp"] == 20.0
  assert by_method["awstream"]["total"]["profiling_frames"] == 10 * len(
      adapt.grid(adapt.Workload("detection", "carphone", [], None, [])))
  assert "oneadapt" in capsys.readouterr().out


def test_run_rejects_unknown_methods(tmp_path, capsys):
  assert cli.main(["run", "--methods", "magic", "--out", str(tmp_path), "--no-progress"]) == 2
  assert "unknown methods" in capsys.readouterr().err
