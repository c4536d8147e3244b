"""`oneadapt batch`: sharded over 4 (forced host) devices it equals one device and the OneAdapt
loop run in-process; killed with SIGKILL mid-clip it resumes and loses nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from oneadapt_jax import batch, cli, core, workloads

CONFIG = {"kind": "video", "sources": ["carphone"], "lambdas": [0.1, 1.0, 3.0],
          "budgets": [1500.0], "max_segments": 3}


def _command(config_path, out):
  return [sys.executable, "-m", "oneadapt_jax", "batch", str(config_path), "--out", str(out),
          "--no-progress"]


def _done(checkpoint):
  return json.loads(checkpoint.read_text())["state"]["segments_done"]


def _env(devices):
  return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


@pytest.mark.slow  # three batch jobs in subprocesses; .ci/run runs it
def test_sharded_equals_single_device_and_sequential_and_resumes_after_kill(tmp_path):
  config_path = tmp_path / "batch.json"
  config_path.write_text(json.dumps(CONFIG))
  one = batch.main(config_path, tmp_path / "one", progress=False)
  assert len(one["devices"]) == 1

  subprocess.run(_command(config_path, tmp_path / "four"), env=_env(4), check=True,
                 capture_output=True)
  four = json.loads((tmp_path / "four" / "results.json").read_text())
  assert len(four["devices"]) == 4  # 4 runs, one per device
  assert four["workloads"] == one["workloads"]

  # The job is the one OneAdapt loop over the config's runs, in this process or another. (A run
  # batched with others equals the same run alone only to float rounding: see the README.)
  workload = workloads.build("video", source="carphone", max_segments=3)
  runs = one["workloads"]["carphone"]["runs"]
  tradeoffs = [core.Tradeoff(lam=run["lambda"], budget=run["budget"]) for run in runs]
  in_process = core.run_oneadapt(workload, tradeoffs)
  assert [[r.to_json() for r in records] for records in in_process] == [
      run["per_segment"] for run in runs]

  # Kill -9 once the first segment is checkpointed, then run the same command again.
  killed_out = tmp_path / "killed"
  process = subprocess.Popen(_command(config_path, killed_out), env=_env(1),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoint = killed_out / "checkpoint-carphone.json"
  deadline = time.time() + 300
  try:
    while time.time() < deadline and process.poll() is None:
      if checkpoint.exists() and _done(checkpoint) >= 1:
        break
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
  finally:  # never leave the job running, whatever failed above (a no-op once it is dead)
    process.kill()
    status = process.wait()
  assert status == -signal.SIGKILL, "the job finished before it could be killed"
  done_before = _done(checkpoint)
  assert 1 <= done_before < 3 and not (killed_out / "results.json").exists()
  resumed = batch.main(config_path, killed_out, progress=False)
  assert resumed["workloads"] == one["workloads"]


@pytest.mark.parametrize("content, message", [
    ('{"sources": ["carphone"], "lambdas": [0.1], "colour": 1}', "unknown keys"),
    ('{"sources": [], "lambdas": [0.1]}', "non-empty"),
    ('{"sources": ["carphone"]}', "'lambdas' or 'budgets'"),
    ('{"sources": ["carphone"], "lambdas": [-1]}', "lambda"),
    ('{"kind": "radar", "lambdas": [0.1]}', "unknown kind of stream 'radar'"),
    ('{"sources": ["carphone"', "not valid"),
])
def test_bad_config_is_refused_with_its_reason(tmp_path, capsys, content, message):
  path = tmp_path / "batch.json"
  path.write_text(content)
  assert cli.main(["batch", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
  assert message in capsys.readouterr().err


def test_a_checkpoint_of_the_old_schema_is_refused(tmp_path, capsys):
  path = tmp_path / "batch.json"
  path.write_text(json.dumps({"kind": "audio", "lambdas": [0.1], "max_segments": 1}))
  out = tmp_path / "out"
  out.mkdir()
  old = {"config": {}, "segments_done": 1, "settings": [], "opt_state": [], "records": []}
  (out / "checkpoint-audio.json").write_text(json.dumps(old))
  assert cli.main(["batch", str(path), "--out", str(out), "--no-progress"]) == 2
  assert "older oneadapt-jax" in capsys.readouterr().err
  assert json.loads((out / "checkpoint-audio.json").read_text()) == old


def test_missing_config_is_named(tmp_path, capsys):
  assert cli.main(["batch", str(tmp_path / "nope.json"), "--no-progress"]) == 2
  assert "nope.json" in capsys.readouterr().err
