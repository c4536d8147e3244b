"""`oneadapt batch` as a real multi-process JAX job: 2 CPU processes on this machine
(`jax.distributed`, gloo collectives over localhost) give a single process's records, and a job
killed mid-run resumes to the same records."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from oneadapt_jax import batch, cli, distributed

CONFIG = {"kind": "video", "sources": ["carphone"], "lambdas": [0.1, 1.0, 3.0],
          "budgets": [1500.0], "max_segments": 3}
LAUNCHER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
                      *distributed.LAUNCHERS)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(config_path, out, port):
  """The job's two processes, as a launcher would start them."""
  env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and k != "XLA_FLAGS"}
  return [subprocess.Popen(
      [sys.executable, "-m", "oneadapt_jax", "batch", str(config_path), "--out", str(out),
       "--no-progress", "--coordinator", f"localhost:{port}", "--num-processes", "2",
       "--process-id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
      for i in range(2)]


def _finish(processes, timeout=900):
  try:
    outputs = [p.communicate(timeout=timeout)[0].decode() for p in processes]
  finally:
    for p in processes:
      p.kill()
  for p, output in zip(processes, outputs):
    assert p.returncode == 0, output[-3000:]
  return outputs


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  """The config and a single process's results."""
  root = tmp_path_factory.mktemp("distributed")
  config_path = root / "batch.json"
  config_path.write_text(json.dumps(CONFIG))
  return config_path, batch.main(config_path, root / "single", progress=False)


@pytest.mark.slow  # two jobs of two processes each; .ci/run runs it
def test_two_processes_give_a_single_processs_records(single, tmp_path):
  config_path, one = single
  outputs = _finish(_start(config_path, tmp_path / "two", _free_port()))
  two = json.loads((tmp_path / "two" / "results.json").read_text())
  assert len(two["devices"]) == 2  # the mesh spans both processes' devices
  assert two["workloads"] == one["workloads"]
  # one report for the job: process 0's
  assert "lambda=0.1" in outputs[0] and "lambda=0.1" not in outputs[1]


@pytest.mark.slow
def test_a_job_killed_mid_run_resumes_to_the_same_records(single, tmp_path):
  config_path, one = single
  out = tmp_path / "killed"
  processes = _start(config_path, out, _free_port())
  checkpoint = out / "checkpoint-carphone.json"
  deadline = time.time() + 600
  try:
    while time.time() < deadline and all(p.poll() is None for p in processes):
      if checkpoint.exists() and json.loads(checkpoint.read_text())["state"]["segments_done"]:
        break
      time.sleep(0.05)
    processes[1].send_signal(signal.SIGKILL)  # one process dies: the scheduler ends the job
    processes[0].send_signal(signal.SIGKILL)
  finally:
    for p in processes:
      p.kill()
      p.wait()
      p.stdout.close()
  assert [p.returncode for p in processes] == [-signal.SIGKILL] * 2, "finished before the kill"
  done = json.loads(checkpoint.read_text())["state"]["segments_done"]
  assert 1 <= done < 3 and not (out / "results.json").exists()
  _finish(_start(config_path, out, _free_port()))  # the same command again
  resumed = json.loads((out / "results.json").read_text())
  assert resumed["workloads"] == one["workloads"]


@pytest.fixture()
def no_launcher(monkeypatch):
  for name in LAUNCHER_VARIABLES:
    monkeypatch.delenv(name, raising=False)


def test_one_process_starts_nothing(no_launcher, monkeypatch):
  assert distributed.initialize() is False
  assert distributed.initialize("localhost:1", 1, 0) is False
  monkeypatch.setenv("SLURM_NTASKS", "1")  # srun with one task
  assert distributed.initialize() is False


@pytest.mark.parametrize("args, message", [
    (["--coordinator", "localhost:1"], "missing --num-processes, --process-id"),
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "localhost:1"],
     r"--process-id must be in \[0, 2\)"),
])
def test_an_incomplete_multi_process_launch_is_refused(no_launcher, tmp_path, capsys, args,
                                                        message):
  path = tmp_path / "batch.json"
  path.write_text(json.dumps(CONFIG))
  assert cli.main(["batch", str(path), "--out", str(tmp_path / "out"), "--no-progress",
                   *args]) == 2
  assert re.search(message, capsys.readouterr().err)
  assert not (tmp_path / "out").exists()


def test_a_launcher_variable_that_is_not_a_number_is_named(no_launcher, monkeypatch):
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two'"):
    distributed.initialize()
