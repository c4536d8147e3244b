"""`oneadapt batch CONFIG`: OneAdapt over many streams x trade-offs, the runs sharded across devices.

Every stream of the config is a workload of one registered kind (`oneadapt_jax.workloads`); its
runs (one per lambda or budget) go through the one OneAdapt loop
(`oneadapt_jax.core.run_oneadapt`) together: per segment one jitted, `vmap`-ed AccGrad and Adam
step updates every run at once, the run axis sharded over a 1-D `Mesh` of `jax.devices()`. The
same job runs on one CPU, on a GPU or on a TPU slice; tested on CPU with 1 and 4 (forced host)
devices. As several processes (`oneadapt_jax.distributed`: flags, JAX's variables, or SLURM and
Open MPI), the mesh spans every process's devices, each process places its own runs' shards,
every process runs the same host loop on the gathered settings, and process 0 alone writes;
tested with 2 CPU processes over gloo on one machine.

After each segment a checkpoint (settings, optimiser state, lambdas, records) is written
atomically to `OUT/checkpoint-<stream>.json`; a killed job resumes from the last finished segment
and loses nothing else. Finished streams are kept in `OUT/results.json`.

CONFIG is a JSON (or TOML) file, for example:

    {"kind": "video", "task": "detection", "sources": ["carphone", "bikes"],
     "lambdas": [0.1, 0.3, 1.0], "budgets": [2000], "max_segments": null, "grad_frames": 1,
     "start": 0.5, "learning_rate": 1.0}

    {"kind": "audio", "lambdas": [0.1, 1.0]}
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tomllib

import jax

from oneadapt_jax import report, workloads
from oneadapt_jax.core import (
  SCHEMA_VERSION,
  Controller,
  LoopState,
  Tradeoff,
  Workload,
  check_schema,
  run_oneadapt,
)


@dataclasses.dataclass(frozen=True)
class BatchConfig:
  """What a batch job runs. `sources`: the streams of the kind (`None`: the kind's one default
  stream); `task`: for kinds with several tasks."""

  lambdas: tuple[float, ...] = ()
  budgets: tuple[float, ...] = ()
  kind: str = "video"
  sources: tuple[str, ...] | None = None
  task: str | None = None
  max_segments: int | None = None
  grad_frames: int = 1
  start: float = 0.5
  learning_rate: float = 1.0

  @classmethod
  def from_file(cls, path: pathlib.Path) -> BatchConfig:
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
    if "sources" in raw and not raw["sources"]:
      raise ValueError(f"batch config {path}: 'sources' must be non-empty (or left out)")
    if not raw.get("lambdas") and not raw.get("budgets"):
      raise ValueError(f"batch config {path} needs non-empty 'lambdas' or 'budgets'")
    config = cls(**{**raw, **{k: tuple(raw[k]) for k in ("sources",) if raw.get(k)},
                    "lambdas": tuple(float(v) for v in raw.get("lambdas", ())),
                    "budgets": tuple(float(v) for v in raw.get("budgets", ()))})
    _ = config.tradeoffs  # each lambda and budget validates itself
    workloads.builder(config.kind)  # names an unknown kind
    return config

  @property
  def tradeoffs(self) -> list[Tradeoff]:
    return ([Tradeoff(lam=v) for v in self.lambdas] + [Tradeoff(budget=b) for b in self.budgets])

  def workload(self, source: str | None) -> Workload:
    return workloads.build(self.kind, source=source, task=self.task,
                           max_segments=self.max_segments)


def _as_json(config: BatchConfig) -> dict:
  """The config as it reads back from a checkpoint (tuples become lists)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def _save(path: pathlib.Path, payload: dict) -> None:
  if jax.process_index() != 0:  # across hosts every process holds the same state; one writes
    return
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(payload))
  os.replace(tmp, path)  # atomic: a kill leaves the old checkpoint or the new one


def _read(path: pathlib.Path, config: dict, mismatch: str) -> dict:
  """A checkpoint or results file of this schema written by `config` (else an error naming
  `path` and `mismatch`)."""
  saved = json.loads(path.read_text())
  check_schema(saved, source=str(path))
  if saved["config"] != config:
    raise ValueError(f"{path} {mismatch}")
  return saved


def run_workload(workload: Workload, tradeoffs: list[Tradeoff], controller: Controller,
                 checkpoint: pathlib.Path, *, start: float = 0.5, stamp: dict | None = None,
                 progress: bool = True) -> list[dict]:
  """Every trade-off on one workload through the one OneAdapt loop, resuming from and writing
  `checkpoint` (whose `stamp`, e.g. the batch config, must match). Returns the runs as in
  `results.json`."""
  stamp = {} if stamp is None else stamp
  resume = None
  if checkpoint.exists():
    saved = _read(checkpoint, stamp, "was written by another batch config; move it away to start "
                  "afresh")
    resume = LoopState.from_json(saved["state"], source=str(checkpoint))

  def save(state: LoopState) -> None:
    _save(checkpoint, {"schema": SCHEMA_VERSION, "config": stamp, "state": state.to_json()})

  records = run_oneadapt(workload, tradeoffs, controller=controller, start=start, resume=resume,
                         checkpoint=save, progress=progress)
  return [{"method": "oneadapt", "lambda": t.lam, "budget": t.budget,
           "total": report.summarise(run, workload, t), "per_segment": [r.to_json() for r in run]}
          for t, run in zip(tradeoffs, records)]


def main(config_path: pathlib.Path, out_dir: pathlib.Path, *, progress: bool = True) -> dict:
  config = BatchConfig.from_file(config_path)
  out_dir.mkdir(parents=True, exist_ok=True)
  results_path = out_dir / "results.json"
  stamp = _as_json(config)
  if results_path.exists():
    results = _read(results_path, stamp, "holds another batch config's results; choose another "
                    "--out")
  else:
    results = {"schema": SCHEMA_VERSION, "config": stamp, "workloads": {}}
  results["devices"] = [str(d) for d in jax.devices()]
  controller = Controller(config.grad_frames, config.learning_rate)
  for source in config.sources or (None,):
    name = config.kind if source is None else pathlib.Path(source).stem
    if name in results["workloads"]:
      continue  # finished before an interruption
    workload = config.workload(source)
    runs = run_workload(workload, config.tradeoffs, controller,
                        out_dir / f"checkpoint-{name}.json", start=config.start, stamp=stamp,
                        progress=progress and jax.process_index() == 0)
    results["workloads"][name] = {"kind": workload.kind, "task": workload.task,
                                  "source": workload.source, "runs": runs}
    _save(results_path, results)
  if jax.process_index() != 0:  # one report for the job
    return results
  print(f"{'stream':<14}{'trade-off':>16}{'accuracy':>10}{'rel. bytes':>12}")
  for name, entry in results["workloads"].items():
    for run in entry["runs"]:
      t = run["total"]
      label = f"lambda={run['lambda']:g}" if run["lambda"] is not None else f"{run['budget']:g} B/s"
      print(f"{name:<14}{label:>16}{t['accuracy']:>10.3f}{t['relative_bytes']:>12.3f}")
  return results
