"""Experiments as config files: bundled and user configs, overrides, and the runs they drive;
the batch job on another kind of stream with a budget."""

from __future__ import annotations

import json
import math

import pytest

from oneadapt_jax import cli, configs


@pytest.mark.parametrize("name", configs.NAMES)
def test_every_bundled_config_and_its_small_variant_load(name):
  full, small = configs.get(name), configs.get(f"{name}:runlocal")
  keys = configs.BENCH_KEYS if name == "bench" else configs.KEYS
  assert set(full) == set(keys) and set(small) == set(keys)
  assert small["workload"].get("max_segments") is not None  # runlocal is small
  if name in ("demo", "bench"):  # prefixes of vtest, by design (their docstrings say why)
    assert full["workload"]["max_segments"] > small["workload"]["max_segments"]
  else:
    assert full["workload"].get("max_segments") is None


def test_overrides_reach_the_workload_and_refuse_unknown_keys():
  config = configs.override(configs.get("video"), "workload.task=segmentation")
  config = configs.override(config, "lambdas=[0.5, 2]")
  assert config["workload"]["task"] == "segmentation" and config["lambdas"] == [0.5, 2]
  assert configs.get("video")["workload"]["task"] == "detection"  # the module's is untouched
  with pytest.raises(ValueError, match="unknown config key 'colour'"):
    configs.override(config, "colour=1")
  with pytest.raises(ValueError, match="KEY=VALUE"):
    configs.override(config, "lambdas")
  with pytest.raises(ValueError, match="unknown config 'nope'; bundled: demo, video, vtest"):
    configs.get("nope")


def test_a_config_file_of_ones_own_runs_with_command_line_overrides(tmp_path, capsys):
  path = tmp_path / "mine.py"
  path.write_text(
      "def get_config(arg=None):\n"
      "  return {'kind': 'audio', 'workload': {'max_segments': 3}, 'sources': None,\n"
      "          'lambdas': [0.3], 'budgets': [], 'methods': ['oneadapt', 'oracle'],\n"
      "          'static': False}\n")
  out = tmp_path / "out"
  assert cli.main(["run", "--config", str(path), "--set", "lambdas=[1.0]", "--max-segments", "2",
                   "--out", str(out), "--no-progress"]) == 0
  results = json.loads((out / "results.json").read_text())
  assert results["kind"] == "audio" and results["segments"] == 2
  assert {(r["method"], r["lambda"]) for r in results["runs"]} == {("oneadapt", 1.0),
                                                                   ("oracle", 1.0)}
  assert results["static"] == []
  capsys.readouterr()
  assert cli.main(["run", "--config", str(tmp_path / "missing.py"), "--no-progress"]) == 2
  assert "missing.py does not exist" in capsys.readouterr().err


def test_batch_runs_another_kind_with_a_budget(tmp_path, capsys):
  path = tmp_path / "batch.json"
  path.write_text(json.dumps({"kind": "lidar", "lambdas": [0.3], "budgets": [20000.0],
                              "max_segments": 2}))
  assert cli.main(["batch", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
  results = json.loads((tmp_path / "out" / "results.json").read_text())
  (entry,) = results["workloads"].values()
  assert entry["kind"] == "lidar"
  runs = {(r["lambda"], r["budget"]): r for r in entry["runs"]}
  assert set(runs) == {(0.3, None), (None, 20000.0)}
  budget = runs[(None, 20000.0)]["per_segment"]
  # Under the budget lambda starts at 0 and moves by dual ascent on the real bytes.
  assert budget[0]["lam"] == 0.0 and budget[1]["lam"] == pytest.approx(
      max(0.0, 0.25 * math.log(budget[0]["bytes"] / 20000.0)), rel=1e-6)
  assert "lambda=0.3" in capsys.readouterr().out
