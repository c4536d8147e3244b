"""`oneadapt batch CONFIG`: OneAdapt over many clips x lambdas, the runs sharded across devices.

The runs of one clip advance in lock-step, segment by segment. Per segment, each run's discrete
configuration is encoded with x264 and scored on the host (memoised: runs that agree share the
encode); then one jitted, `vmap`-ed AccGrad and Adam step update every run at once, with the
run axis sharded over a 1-D `Mesh` of `jax.devices()` (`NamedSharding(mesh, P("runs"))`; the
model and the segment are replicated). The same job runs on one CPU, on a GPU or on a TPU slice;
tested on CPU with 1 and 4 (forced host) devices. Across hosts (after
`jax.distributed.initialize()`) every process runs the same host loop on gathered settings and
process 0 writes; that path has not been run here. The arithmetic is `adapt.Controller`'s, as in
`oneadapt run`.

After each segment a checkpoint (settings, optimiser state, records) is written atomically to
`OUT/checkpoint-<clip>.json`; a killed job resumes from the last finished segment and loses
nothing else. Finished clips are kept in `OUT/results.json`.

CONFIG is a JSON (or TOML) file:

    {"task": "detection", "clips": ["carphone", "bikes"], "lambdas": [0.1, 0.3, 1.0],
     "max_segments": null, "grad_frames": 2, "start": 0.5, "learning_rate": 1.0}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import tomllib
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from oneadapt_jax import adapt
from oneadapt_jax.workload import Record, Tradeoff, Workload


@dataclasses.dataclass(frozen=True)
class BatchConfig:
  clips: tuple[str, ...]
  lambdas: tuple[float, ...]
  task: str = "detection"
  max_segments: int | None = None
  grad_frames: int = 2
  start: float = 0.5
  learning_rate: float = 1.0

  @classmethod
  def from_file(cls, path: pathlib.Path) -> "BatchConfig":
    path = pathlib.Path(path)
    if not path.is_file():
      raise FileNotFoundError(f"batch config {path} does not exist")
    text = path.read_text()
    try:
      raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
      raise ValueError(f"batch config {path} is not valid {path.suffix[1:] or 'JSON'}: {err}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - fields
    if unknown:
      raise ValueError(f"batch config {path}: unknown keys {sorted(unknown)}; "
                       f"known: {sorted(fields)}")
    if not raw.get("clips") or not raw.get("lambdas"):
      raise ValueError(f"batch config {path} needs non-empty 'clips' and 'lambdas'")
    for lam in raw["lambdas"]:
      Tradeoff(lam=float(lam))  # validates
    return cls(**{**raw, "clips": tuple(raw["clips"]),
                  "lambdas": tuple(float(v) for v in raw["lambdas"])})


def _as_json(config: BatchConfig) -> dict:
  """The config as it reads back from a checkpoint (tuples become lists)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def _mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("runs",))


class _Sharded:
  """The controller's gradients and step, vmapped over runs and sharded over the mesh."""

  def __init__(self, controller: adapt.Controller, workload: Workload, mesh: Mesh):
    graphdef, self.model_state = nnx.split(workload.model)
    proxy = workload.spec.proxy
    runs, replicated = NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())

    def gradients(state, setting, raw):
      return controller.gradients(graphdef, state, proxy, setting, raw)

    self.gradients = jax.jit(jax.vmap(gradients, in_axes=(None, 0, None)),
                             in_shardings=(replicated, runs, replicated), out_shardings=runs)
    self.step = jax.jit(jax.vmap(controller.step, in_axes=(0, 0, 0, 0, None, None, 0)),
                        out_shardings=runs)
    self.reference = jax.jit(lambda state, raw: controller.reference(graphdef, state, proxy, raw))
    self.runs = runs


def _to_host(tree):
  """A (possibly multi-host) sharded pytree as NumPy arrays on every process."""
  if all(leaf.is_fully_addressable for leaf in jax.tree.leaves(tree)):
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree)  # across hosts: replicated to every process


def _save(path: pathlib.Path, payload: dict) -> None:
  if jax.process_index() != 0:  # across hosts every process holds the same state; one writes
    return
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(payload))
  os.replace(tmp, path)  # atomic: a kill leaves the old checkpoint or the new one


def run_clip(config: BatchConfig, clip: str, out_dir: pathlib.Path, *, progress: bool = True
             ) -> tuple[list[list[Record]], Workload]:
  """Every lambda of `config` on one clip; resumes from `out_dir/checkpoint-<clip>.json`.
  Returns the records of each run and the workload (whose evaluations are memoised)."""
  workload = Workload.build(config.task, clip, max_segments=config.max_segments)
  controller = adapt.Controller(workload.frames_per_segment, config.grad_frames,
                                config.learning_rate)
  mesh = _mesh()
  sharded = _Sharded(controller, workload, mesh)
  num_runs = len(config.lambdas)
  padded = math.ceil(num_runs / mesh.size) * mesh.size  # every device gets whole runs
  lams = jnp.asarray(list(config.lambdas) + [config.lambdas[-1]] * (padded - num_runs),
                     jnp.float32)
  setting, opt_state = controller.init(config.start)
  settings = jax.tree.map(lambda x: jnp.broadcast_to(x, (padded,) + x.shape), setting)
  opt_states = jax.tree.map(lambda x: jnp.broadcast_to(x, (padded,) + jnp.shape(x)), opt_state)
  records: list[list[Record]] = [[] for _ in range(num_runs)]
  first = 0
  checkpoint = out_dir / f"checkpoint-{pathlib.Path(clip).stem}.json"
  if checkpoint.exists():
    saved = json.loads(checkpoint.read_text())
    if saved["config"] != _as_json(config):
      raise ValueError(f"{checkpoint} was written by another batch config; move it away to "
                       "start afresh")
    first = saved["segments_done"]
    settings = jax.tree.unflatten(jax.tree.structure(settings),
                                  [jnp.asarray(v, jnp.float32) for v in saved["settings"]])
    leaves, treedef = jax.tree.flatten(opt_states)
    opt_states = jax.tree.unflatten(treedef, [jnp.asarray(v, leaf.dtype)
                                              for v, leaf in zip(saved["opt_state"], leaves)])
    records = [[Record(**r) for r in run] for run in saved["records"]]
  settings = jax.device_put(settings, sharded.runs)
  opt_states = jax.device_put(opt_states, sharded.runs)
  refs = None
  segments = range(first, len(workload.segments))
  for i in tqdm(segments, desc=f"batch {clip} ({mesh.size} device(s))", disable=not progress):
    raw = jnp.asarray(workload.segments[i].as_float())
    if refs is None:  # computed again on resume: the first segment's, as in `oneadapt`
      refs = tuple(jnp.maximum(r, 1e-6) for r in sharded.reference(
          sharded.model_state, jnp.asarray(workload.segments[0].as_float())))
    host = _to_host(settings)
    for r in range(num_runs):
      chosen = controller.config({k: v[r] for k, v in host.items()})
      records[r].append(controller.record(i, chosen, workload.evaluate(i, chosen),
                                          config.lambdas[r]))
    _, grads, _, grad_costs = sharded.gradients(sharded.model_state, settings, raw)
    settings, opt_states = sharded.step(settings, opt_states, grads, grad_costs, *refs, lams)
    _save(checkpoint, {
        "config": _as_json(config), "segments_done": i + 1,
        "settings": [v.tolist() for v in jax.tree.leaves(_to_host(settings))],
        "opt_state": [np.asarray(v).tolist() for v in jax.tree.leaves(_to_host(opt_states))],
        "records": [[dataclasses.asdict(x) for x in run] for run in records]})
  return records, workload


def main(config_path: pathlib.Path, out_dir: pathlib.Path, *, progress: bool = True) -> dict:
  config = BatchConfig.from_file(config_path)
  out_dir.mkdir(parents=True, exist_ok=True)
  results_path = out_dir / "results.json"
  results = (json.loads(results_path.read_text()) if results_path.exists()
             else {"config": _as_json(config), "workloads": {}})
  if results["config"] != _as_json(config):
    raise ValueError(f"{results_path} holds another batch config's results; choose another --out")
  results["devices"] = [str(d) for d in jax.devices()]
  for clip in config.clips:
    if clip in results["workloads"]:
      continue  # finished before an interruption
    records, workload = run_clip(config, clip, out_dir, progress=progress)
    runs = [{"method": "oneadapt", "lambda": lam, "budget": None,
             "total": adapt.summarise(run_records, workload, Tradeoff(lam=lam)),
             "per_segment": [dataclasses.asdict(r) for r in run_records]}
            for lam, run_records in zip(config.lambdas, records)]
    results["workloads"][clip] = {"task": config.task, "clip": clip, "runs": runs}
    _save(results_path, results)
  print(f"{'clip':<14}{'lambda':>8}{'accuracy':>10}{'rel. bytes':>12}")
  for clip, entry in results["workloads"].items():
    for run in entry["runs"]:
      t = run["total"]
      print(f"{clip:<14}{run['lambda']:>8g}{t['accuracy']:>10.3f}{t['relative_bytes']:>12.3f}")
  return results
