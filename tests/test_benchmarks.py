"""The benchmark scripts still run (smallest configuration); their figures live in
benchmarks/RESULTS.md, not in assertions."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "benchmarks"))


@pytest.mark.slow
def test_accgrad_cost_runs_and_writes_json(tmp_path):
  import accgrad_cost

  rows = accgrad_cost.main(["--repeats", "1", "--out", str(tmp_path)])
  assert {r["chain"] for r in rows} == {"1", "2", "3", "4", "roi"}
  assert all(r["fused_over_forward"] > 0 for r in rows)
  assert json.loads((tmp_path / "accgrad_cost.json").read_text())["rows"] == rows


@pytest.mark.slow
def test_throughput_runs_and_writes_json(tmp_path):
  import throughput

  rows = throughput.main(["--repeats", "2", "--sizes", "carphone", "--lengths", "5",
                          "--out", str(tmp_path), "--stages", "--fft-threads", "--ycbcr420"])
  assert [r["chain"] for r in rows] == ["rgb", "4:2:0"]
  assert all(r["frames"] == 5 and r["size"] == [144, 176] for r in rows)
  # the ratio is the median of each repeat's own, its step and inference timed side by side
  each = rows[0]["step_over_inference_each"]
  assert len(each) == 2 and rows[0]["step_over_inference"] == pytest.approx(sum(each) / 2)
  assert rows[0]["inference_s"] > 0 and rows[0]["camera_step_s"] > 0
  assert rows[0]["step_s"] == pytest.approx(rows[0]["server_backward_s"]
                                            + rows[0]["camera_step_s"])
  assert json.loads((tmp_path / "throughput.json").read_text())["rows"] == rows
  by_size = json.loads((tmp_path / "stages.json").read_text())["sizes"]
  for name, first in (("carphone", "resolution"), ("carphone 4:2:0",
                                                   "resolution, to 4:2:0 planes")):
    assert [r["stage"] for r in by_size[name]][:2] == [first, "frame rate"]
    assert all(r["vjp_s"] > 0 and r["forward_s"] > 0 for r in by_size[name])
    assert [r["frames"] for r in by_size[name]] == [5, 5, 1, 5]
  ffts = json.loads((tmp_path / "fft_threads.json").read_text())["sizes"]["carphone"]
  assert [r["case"] for r in ffts] == ["rfft alone", "rfft after x * 2", "irfft alone",
                                       "irfft after z * 2"]
  assert all(r["wall_s"] > 0 and r["cpu_over_wall"] > 0 for r in ffts)


@pytest.mark.slow
def test_throughput_compares_two_revisions_in_alternate_processes(tmp_path):
  import throughput

  root = pathlib.Path(__file__).resolve().parent.parent
  if subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                    check=False).returncode != 0:
    pytest.skip("--compare needs the project as a git checkout")
  runs = throughput.main(["--compare", "HEAD", "--rounds", "1", "--repeats", "1", "--sizes",
                          "carphone", "--lengths", "5", "--out", str(tmp_path)])
  assert [(r["round"], r["side"], r["frames"]) for r in runs] == [(0, "HEAD", 5),
                                                                   (0, "this tree", 5)]
  # each side ran its own code: the revision from a worktree, removed after
  assert runs[1]["code"] == str(root) and runs[0]["code"] != str(root)
  assert not pathlib.Path(runs[0]["code"]).exists()
  assert all(r["step_over_inference"] > 0 for r in runs)
  assert json.loads((tmp_path / "compare.json").read_text())["runs"] == runs
  with pytest.raises(SystemExit, match="no worktree at 'no-such-revision'"):
    throughput.main(["--compare", "no-such-revision", "--out", str(tmp_path)])
  for alone in ("--stages", "--fft-threads", "--ycbcr420"):
    with pytest.raises(SystemExit, match="--ycbcr420 or --trace without it"):
      throughput.main(["--compare", "HEAD", alone, "--out", str(tmp_path)])


@pytest.mark.slow
def test_pedestrian_tiling_runs_and_writes_json(tmp_path):
  import pedestrian_tiling

  rows = pedestrian_tiling.main(["--every", "40", "--grids", "1x1", "2x3", "--repeats", "1",
                                 "--out", str(tmp_path)])
  assert [r["grid"] for r in rows] == ["1x1", "2x3"] and rows[1]["tiles"] == 6
  assert all(0 <= r["recall_of_union"] <= 1 for r in rows)


@pytest.mark.slow
def test_memory_runs_and_writes_json(tmp_path):
  import memory

  rows = memory.main(["--clip", "carphone", "--lengths", "2", "--out", str(tmp_path)])
  assert [r["segments"] for r in rows] == [None, None, 2]
  # The streamed segments are the clip's whole seconds (a tail shorter than one is dropped).
  assert 0 < rows[1]["frame_gib"] <= rows[0]["frame_gib"]
  assert all(r["peak_gib"] > 0 for r in rows)
  # CPU devices keep no memory statistics: the column stays empty rather than reading 0.
  assert all(r["device_peak_gib"] is None for r in rows)
  assert json.loads((tmp_path / "memory.json").read_text())["rows"] == rows


def test_memory_reads_the_device_peak_where_the_device_keeps_one():
  """A device with memory statistics (an accelerator's; here JAX's device list is replaced in
  the child) has its peak read as the child exits, beside the resident set's."""
  import memory

  fake = ("import jax, types\n"
          "stats = {'peak_bytes_in_use': 3 * 2**29}\n"
          "jax.local_devices = lambda: [types.SimpleNamespace(memory_stats=lambda: stats)]\n"
          "print('done')\n")
  gib, device_gib, seconds, last = memory.peaks([sys.executable, "-c", fake], device=True)
  assert gib > 0 and seconds > 0 and last == "done"
  assert device_gib == 1.5
  assert memory.peaks([sys.executable, "-c", fake])[1] is None  # not asked for


@pytest.mark.slow
def test_server_overhead_runs_and_writes_json(tmp_path):
  import server_overhead

  payload = server_overhead.main(["--repeats", "2", "--clips", "carphone", "--out",
                                  str(tmp_path)])
  assert [r["estimator"] for r in payload["rows"]] == ["decoded", "fused"]
  assert all(r["backward_cost"] >= 0 and r["overhead_full_rate"] >= 0 for r in payload["rows"])
  # the figure is the median of each repeat's own ratio, its step and forward pass side by side
  for row in payload["rows"]:
    assert len(row["backward_cost_each"]) == 2
    assert row["backward_cost"] == pytest.approx(sum(row["backward_cost_each"]) / 2)
  assert payload["rows"][0]["camera_s"] > 0


@pytest.mark.slow
def test_gradient_scale_runs_and_its_ratios_are_the_two_terms(tmp_path):
  import gradient_scale

  payload = gradient_scale.main(["--clip", "carphone", "--max-segments", "2", "--out",
                                 str(tmp_path)])
  rows = payload["rows"]
  assert len(rows) == 6 and {r["knob"] for r in rows} == {"resolution", "frame_rate", "qp"}
  for r in rows:
    assert r["ratio"] == pytest.approx(abs(r["accuracy_term"]) / abs(r["byte_term"]))
    if r["knob"] != "frame_rate":
      assert r["byte_term"] > 0  # more quality, more bytes
  assert payload["median_ratio"] == pytest.approx(float(np.median([r["ratio"] for r in rows])))
  # --calibrate: lambda times the first segment's median ratio over the knobs, at the start
  calibrated = gradient_scale.main(["--clip", "carphone", "--max-segments", "1", "--calibrate",
                                    "--out", str(tmp_path)])
  first = [r["ratio"] for r in rows if r["segment"] == 0]
  assert calibrated["calibration_scale"] == pytest.approx(float(np.median(first)), rel=1e-4)
  assert (tmp_path / "gradient_scale_carphone_decoded_calibrated.json").exists()


@pytest.mark.slow
def test_speech_codec_runs_and_writes_json(tmp_path):
  import speech_codec

  result = speech_codec.main(["--segments", "1", "--out", str(tmp_path)])
  assert [r["bitrate"] for r in result["rows"]] == [6000, 8000, 12000, 16000, 24000, 32000]
  assert all(r["opus_bytes"] > 0 and 0 <= r["accuracy_opus"] <= 1 for r in result["rows"])
  assert result["byte_steps"] > 0
  assert json.loads((tmp_path / "speech_codec.json").read_text())["rows"] == result["rows"]


@pytest.mark.slow
def test_run_all_gathers_the_tables_under_the_device(tmp_path):
  import jax
  import run_all

  report = run_all.main(["--quick", "--only", "throughput", "--out", str(tmp_path)])
  assert report == tmp_path / jax.default_backend() / "RESULTS.md"
  text = report.read_text()
  assert jax.devices()[0].device_kind in text and "## throughput" in text
  assert "step/infer" in text and (report.parent / "throughput.json").exists()


@pytest.mark.slow
def test_layer_backward_runs_and_its_layers_agree(tmp_path):
  import layer_backward

  rows = layer_backward.main(["--frames", "1", "--repeats", "1", "--out", str(tmp_path)])
  assert [r["layer"].split(",")[0] for r in rows] == ["BlazeFace stem", "SSDLite stem",
                                                       "BlazeFace shortcut"]
  assert all(r["max_abs_gradient_difference"] < 1e-3 and r["ours_gradient_s"] > 0 for r in rows)
  assert json.loads((tmp_path / "layer_backward.json").read_text())["rows"] == rows
