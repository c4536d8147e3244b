"""The workload protocol: a kind of stream defined in this file alone runs every method, the
oracle and the batch job through the public API; records and logs of the old schema are refused;
no module reaches into another package's private names."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import knobs
from oneadapt_jax import batch, core, experiment, metrics, proxies, workloads
from oneadapt_jax.baselines import METHODS

# --------------------------------------------------------------------------- a toy kind of stream

SAMPLES, CLASSES, BITS = 64, 3, (2, 3, 4, 8)


def toy_chain() -> knobs.Knob:
  """One knob, PCM bit depth; its cost, bits of the segment, counted in bytes."""
  return knobs.chain(bit_depth=knobs.scale_cost(knobs.bit_depth(bits=BITS), 1 / 8, unit="bytes"))


class Classifier(nnx.Module):
  def __init__(self, *, rngs: nnx.Rngs):
    self.linear = nnx.Linear(SAMPLES, CLASSES, rngs=rngs)

  def __call__(self, signal):
    return self.linear(signal * 4.0)


@dataclasses.dataclass(eq=False)
class ToyWorkload(core.SentWorkload):
  """A sensor signal classified per segment, sent as PCM at the bit depth."""

  kind = "toy"
  task = "classification"

  def send(self, index, config):
    bits = int(config["bit_depth"])
    scale = 2.0 ** (bits - 1)
    signal = np.asarray(self.segments[index])
    received = np.clip(np.round(signal * scale), -scale, scale - 1) / scale
    return received.astype(np.float32), math.ceil(SAMPLES * bits / 8)


def toy_workload(segments: int = 6) -> ToyWorkload:
  rng = np.random.default_rng(0)
  noise = np.linspace(0.05, 0.6, segments)[:, None]  # the content gets harder
  signals = np.clip(rng.uniform(-0.5, 0.5, (segments, SAMPLES)) * noise * 2, -1, 1)
  return ToyWorkload("seeded signals", [s.astype(np.float32) for s in signals], toy_chain(),
                     Classifier(rngs=nnx.Rngs(0)), proxies.keyword, metrics.keyword)


# --------------------------------------------------------------------------- the toy, end to end


def test_a_kind_defined_in_a_test_runs_every_method_that_applies(tmp_path):
  workload = toy_workload()
  assert isinstance(workload, core.Workload)
  results = experiment.run(workload, tmp_path, lambdas=(0.3,), budgets=(40.0,), progress=False,
                           verbose=False)
  assert {r["method"] for r in results["runs"]} == {"oneadapt", "awstream", "chameleon",
                                                    "oracle"}  # reducto needs a frame filter
  assert results["kind"] == "toy" and results["schema"] == core.SCHEMA_VERSION
  assert len(results["static"]) == len(BITS)
  lam = core.Tradeoff(lam=0.3)
  for run in results["runs"]:
    assert len(run["per_segment"]) == workload.num_segments
    for record in run["per_segment"]:
      assert set(record["config"]) == {"bit_depth"} and record["config"]["bit_depth"] in BITS
      # The bytes and the accuracy are the sender's and the metric's, recomputed here.
      sent, num_bytes = workload.send(record["segment"], record["config"])
      assert record["bytes"] == num_bytes
      logits = np.asarray(workload.model(jnp.asarray(sent)))
      assert record["accuracy"] == metrics.keyword(logits, workload.references[record["segment"]])
  # The oracle is the per-segment argmax of the utility, found here by brute force.
  oracle = next(r for r in results["runs"] if r["method"] == "oracle" and r["lambda"] == 0.3)
  for record in oracle["per_segment"]:
    i = record["segment"]
    scores = {b: lam.score(workload.evaluate(i, {"bit_depth": b}).accuracy,
                           workload.evaluate(i, {"bit_depth": b}).bytes, workload.best_bytes(i))
              for b in map(float, BITS)}
    assert record["config"]["bit_depth"] == max(scores, key=scores.get)
  # OneAdapt starts on the middle rung and runs two backward passes... of one frame: one.
  oneadapt = next(r for r in results["runs"] if r["method"] == "oneadapt" and r["lambda"] == 0.3)
  assert oneadapt["per_segment"][0]["config"] == {"bit_depth": 4.0}
  assert all(r["backward_passes"] == 1 for r in oneadapt["per_segment"])


def test_the_batch_job_on_the_toy_equals_one_run_at_a_time_and_resumes(tmp_path):
  workload = toy_workload()
  tradeoffs = [core.Tradeoff(lam=0.1), core.Tradeoff(lam=3.0), core.Tradeoff(budget=40.0)]
  controller = core.Controller()
  checkpoint = tmp_path / "checkpoint.json"
  runs = batch.run_workload(workload, tradeoffs, controller, checkpoint, progress=False)
  for tradeoff, run in zip(tradeoffs, runs, strict=True):
    alone = core.oneadapt(workload, tradeoff)
    assert [r.to_json() for r in alone] == run["per_segment"]
  # Resuming from the checkpoint of segment 3 gives the same records.
  saved = json.loads(checkpoint.read_text())
  assert saved["state"]["segments_done"] == workload.num_segments
  partial = []
  core.run_oneadapt(workload, tradeoffs, controller=controller,
                    checkpoint=lambda state: partial.append(state) if state.segments_done == 3
                    else None)
  resumed = core.run_oneadapt(workload, tradeoffs, controller=controller, resume=partial[0])
  assert [[r.to_json() for r in run] for run in resumed] == [run["per_segment"] for run in runs]


def test_a_method_that_does_not_apply_is_refused_with_the_reason(tmp_path):
  with pytest.raises(ValueError, match="reducto does not apply.*frame_filter.*bit_depth"):
    experiment.run(toy_workload(), tmp_path, methods=["reducto"], progress=False)
  with pytest.raises(ValueError, match="unknown method .magic.; available"):
    experiment.run(toy_workload(), tmp_path, methods=["magic"], progress=False)
  assert METHODS["reducto"].requires == ("frame_filter",)


def test_a_log_of_the_old_schema_is_refused_and_kept(tmp_path):
  old = {"task": "classification", "clip": "seeded signals", "proxy": None, "method": "static",
         "unit": "x", "records": [{"method": "static", "segment": 0, "resolution": 1.0}]}
  log = tmp_path / "records.jsonl"
  log.write_text(json.dumps(old) + "\n")
  with pytest.raises(core.SchemaError, match="older oneadapt-jax.*another --out"):
    experiment.run(toy_workload(), tmp_path, progress=False, verbose=False)
  assert log.read_text() == json.dumps(old) + "\n"  # nothing already written is lost
  with pytest.raises(core.SchemaError, match="config"):
    core.Record.from_json(old["records"][0])
  # Version 2: baselines of other decision rules, totals with the warm-up in them.
  log.write_text(json.dumps({**old, "schema": 2}) + "\n")
  with pytest.raises(core.SchemaError, match="an older oneadapt-jax.*schema 2.*reads schema 3"):
    experiment.run(toy_workload(), tmp_path, progress=False, verbose=False)


def test_the_registry_names_kinds_and_options():
  with pytest.raises(ValueError, match="unknown kind of stream 'radar'; available: video, audio"):
    workloads.build("radar")
  with pytest.raises(ValueError, match="the audio workload takes no task"):
    workloads.build("audio", task="detection")
  assert "source" in workloads.options("video")


# --------------------------------------------------------------------------- layering

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("knobs", "models", "oneadapt_jax")


def _private_imports(path: pathlib.Path):
  """`(line, name)` of each import of a private name of another top-level package."""
  own = path.relative_to(ROOT).parts[0]
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      parts = node.module.split(".")
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.Import):
      parts, names = [], [alias.name for alias in node.names]
    else:
      continue
    for dotted in [".".join([*parts, n]) for n in names] if parts else names:
      pieces = dotted.split(".")
      if pieces[0] in PACKAGES and pieces[0] != own and any(p.startswith("_") for p in pieces):
        yield node.lineno, dotted


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_private_name_of_another_package(package):
  found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in sorted((ROOT / package).rglob("*.py"))
           for line, name in _private_imports(path)]
  assert not found, "\n".join(found)


def test_knobs_never_imports_models_and_models_never_imports_knobs():
  for package, forbidden in (("knobs", ("models", "oneadapt_jax")), ("models", ("knobs",))):
    for path in (ROOT / package).rglob("*.py"):
      for node in ast.walk(ast.parse(path.read_text())):
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                   [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        assert not any(m.split(".")[0] in forbidden for m in modules), (path, modules)


# --------------------------------------------------------------------------- one send rule


@pytest.mark.parametrize("num", [1, 7, 10, 30])
def test_frame_rate_send_rule_is_one_for_the_knob_and_the_encoder(num):
  """The knob decides in float32 (JAX), the encoder in float64 (NumPy): one rule, same frames,
  at every rung of the default ladder; and the knob's forward pass holds exactly those."""
  knob = knobs.frame_rate(source_fps=10.0)
  index = jnp.arange(num, dtype=jnp.float32) / 64  # each frame's value names it
  frames = index.reshape(num, 1, 1, 1) * jnp.ones((num, 2, 2, 3))
  for rung, fps in enumerate(knob.values):
    fraction = float(fps) / 10.0
    sent = np.asarray(knobs.frames_sent(num, fraction))
    assert sent.dtype == bool and sent[0]
    np.testing.assert_array_equal(sent, np.asarray(knobs.frames_sent(num, jnp.float32(fraction))))
    held = np.asarray(knob.apply(jnp.float32(rung / (len(knob.values) - 1)), frames))[:, 0, 0, 0]
    np.testing.assert_allclose(held * 64, np.flatnonzero(sent)[np.cumsum(sent) - 1], atol=1e-4)


def test_point_density_send_rule_matches_the_knobs_hard_decision():
  cloud = knobs.PointCloud(jnp.zeros((257, 3)), jnp.ones(257))
  knob = knobs.point_density()
  for rung, density in enumerate(knob.values):
    kept = knob.apply(jnp.float32(rung / (len(knob.values) - 1)), cloud).mask
    np.testing.assert_array_equal(np.asarray(kept) > 0, knobs.points_sent(257, float(density)))


def test_compiled_controllers_are_bounded():
  from oneadapt_jax.core import _controller

  for _ in range(_controller._BOUND_CACHE_SIZE + 3):
    core.Controller().bind(toy_workload(segments=1))
  assert len(_controller._BOUND) == _controller._BOUND_CACHE_SIZE


def test_a_chain_passing_planes_reruns_oneadapt_and_reuses_the_baselines(tmp_path):
  """A video chain passing 4:2:0 planes (`knob_chain(ycbcr420=True)`) ascends another gradient:
  OneAdapt's records from the default chain are not reused for it; a baseline's are."""
  workload = toy_workload(segments=2)
  methods = ["oneadapt", "awstream"]
  experiment.run(workload, tmp_path, lambdas=(0.3,), static=False, progress=False,
                 methods=methods, verbose=False)
  log = tmp_path / "records.jsonl"
  marked = [json.loads(line) for line in log.read_text().splitlines()]
  for line in marked:  # recomputed records would not carry this accuracy
    line["records"] = [dict(r, accuracy=-1.0) for r in line["records"]]
  log.write_text("".join(json.dumps(line) + "\n" for line in marked))
  workload.ycbcr420 = True
  results = experiment.run(workload, tmp_path, lambdas=(0.3,), static=False, progress=False,
                           methods=methods, verbose=False)
  accuracy = {r["method"]: [s["accuracy"] for s in r["per_segment"]] for r in results["runs"]}
  assert all(a >= 0 for a in accuracy["oneadapt"]) and accuracy["awstream"] == [-1.0, -1.0]
  assert results["ycbcr420"] is True
  # and the default chain, read back, still finds its own OneAdapt records
  workload.ycbcr420 = False
  again = experiment.run(workload, tmp_path, lambdas=(0.3,), static=False, progress=False,
                         methods=methods, verbose=False)
  assert [s["accuracy"] for s in again["runs"][0]["per_segment"]] == [-1.0, -1.0]


def test_oneadapt_variants_run_by_name_and_log_under_it(tmp_path):
  workload = toy_workload(segments=3)
  results = experiment.run(workload, tmp_path, lambdas=(0.3,), static=False, progress=False,
                           methods=["oneadapt", "oneadapt[preset=paper]"], verbose=False)
  runs = {r["method"]: r for r in results["runs"]}
  assert set(runs) == {"oneadapt", "oneadapt[preset=paper]"}
  # paper: the best quality first; rungs: the middle rung, rounded up
  assert runs["oneadapt[preset=paper]"]["per_segment"][0]["config"] == workload.best
  assert runs["oneadapt"]["per_segment"][0]["config"] == {"bit_depth": 4.0}
  lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
  assert all(line["oneadapt_revision"] == core.ONEADAPT_REVISION for line in lines)
  # a run logged by another revision of OneAdapt is run again, not reused
  stale = dict(lines[0], oneadapt_revision=1)
  stale["records"] = [dict(r, accuracy=-1.0) for r in stale["records"]]
  (tmp_path / "records.jsonl").write_text(json.dumps(stale) + "\n")
  again = experiment.run(workload, tmp_path, lambdas=(0.3,), static=False, progress=False,
                         methods=[lines[0]["method"]], verbose=False)
  assert all(r["accuracy"] >= 0 for r in again["runs"][0]["per_segment"])
  with pytest.raises(ValueError, match="OPTION=VALUE"):
    experiment.run(workload, tmp_path, methods=["oneadapt[paper]"], progress=False)
  with pytest.raises(ValueError, match="unknown OneAdapt options"):
    experiment.run(workload, tmp_path, methods=["oneadapt[speed=2]"], progress=False)
