"""The experiment driver: methods at every trade-off, and the static sweep, on one workload.

`run(workload, out_dir)` runs each method (`oneadapt_jax.baselines.METHODS`, OneAdapt included)
at every trade-off, plus every grid configuration held fixed, and writes `results.json`
(schema in the README). Resumable: each finished (method, trade-off) unit is appended to
`records.jsonl` as it ends and skipped on a rerun, so an interrupted sweep loses at most the unit
in flight. A log of another schema is refused with a message saying what to do.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence

import jax
from tqdm.auto import tqdm

from oneadapt_jax import report
from oneadapt_jax.baselines import METHODS, base_name, method_of
from oneadapt_jax.baselines import static as static_method
from oneadapt_jax.core import (
  ONEADAPT_REVISION,
  SCHEMA_VERSION,
  CostModel,
  Record,
  SchemaError,
  Tradeoff,
  Workload,
  check_schema,
)


def applicable(workload: Workload, *, methods: Sequence[str] | None = None) -> list[str]:
  """The methods to run: `methods` checked against the registry and the workload (a method that
  does not apply is refused, saying why), or by default every registered method that applies."""
  if methods is None:
    return [m for m, method in METHODS.items() if method.why_not(workload) is None]
  for name in methods:
    why = method_of(name).why_not(workload)
    if why is not None:
      raise ValueError(f"{name} does not apply to this workload: it {why}")
  return list(methods)


#: What only OneAdapt reads of a workload: the proxy it ascends (a workload with several names it
#: in `proxy_name`), and whether a video chain passes 4:2:0 planes between its knobs (the
#: gradient differs where the filter clips: `knob_chain`). The baselines' records serve any.
_ASCENT_KEYS = ("proxy", "ycbcr420")


def _identity(workload: Workload) -> dict:
  """What a log line must match to be reused: the stream, its task and what OneAdapt ascends
  (`_ASCENT_KEYS`; `ycbcr420` named only where set, so logs from before it still match)."""
  planes = {"ycbcr420": True} if getattr(workload, "ycbcr420", False) else {}
  return {"kind": workload.kind, "task": workload.task, "source": workload.source,
          "proxy": getattr(workload, "proxy_name", None), **planes}


def _read_log(log: pathlib.Path, identity: dict, segments: int) -> dict[tuple, list[Record]]:
  done = {}
  for number, line in enumerate(log.read_text().splitlines(), start=1):
    try:
      entry = json.loads(line)
    except json.JSONDecodeError:  # the line being written when a run was killed
      continue
    check_schema(entry, source=f"{log} (line {number})")
    same = all(entry.get(k) == v for k, v in identity.items() if k not in _ASCENT_KEYS)
    # A unit over another number of segments (another --max-segments) is not this one.
    same = same and len(entry["records"]) == segments
    # OneAdapt's runs are reused only by the revision of it that computed them, ascending the
    # same (the baselines' serve any proxy and either chain).
    if same and (base_name(entry["method"]) != "oneadapt"
                 or (all(entry.get(k) == identity.get(k) for k in _ASCENT_KEYS)
                     and entry.get("oneadapt_revision") == ONEADAPT_REVISION)):
      done[(entry["method"], entry["unit"])] = [
          Record.from_json(r, source=f"{log} (line {number})") for r in entry["records"]]
  return done


def run(workload: Workload, out_dir: pathlib.Path, *, lambdas: Sequence[float] = (0.1, 0.3, 1.0),
        budgets: Sequence[float] = (), methods: Sequence[str] | None = None, static: bool = True,
        cost: CostModel | None = None, sweeps: Mapping[str, Sequence[Tradeoff]] | None = None,
        progress: bool = True, verbose: bool = True) -> dict:
  """Runs every method at every trade-off (each lambda, each budget in bytes/s) and, with
  `static`, every grid configuration held fixed; writes `results.json` into `out_dir`.

  `methods`: names in `METHODS` (default: every one that applies to the workload). `cost`: the
  cost model every method obeys and is summarised by. `sweeps`: method -> its own trade-offs,
  in place of `lambdas` and `budgets` for that method (how `oneadapt bench` traces curves)."""
  methods = applicable(workload, methods=methods)
  cost = cost or CostModel()
  tradeoffs = [Tradeoff(lam=float(v)) for v in lambdas] + [Tradeoff(budget=float(b)) for b in budgets]
  sweeps = {m: list((sweeps or {}).get(m, tradeoffs)) for m in methods}
  if not any(sweeps.values()):
    raise ValueError("give at least one lambda or budget")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  log = out_dir / "records.jsonl"
  identity = _identity(workload)
  done = _read_log(log, identity, workload.num_segments) if log.exists() else {}
  jobs = [(m, t.label, lambda m=m, t=t: method_of(m).run(workload, t, cost=cost))
          for m in methods for t in sweeps[m]]
  if static:
    jobs += [("static", json.dumps(c), lambda c=c: static_method(workload, c))
             for c in workload.grid()]
  for method, unit, job in tqdm(jobs, desc=f"{workload.task} on {workload.source}",
                                disable=not progress):
    if (method, unit) in done:
      continue
    records = job()
    done[(method, unit)] = records
    with log.open("a") as f:  # one line per finished unit: an interruption loses nothing
      revision = {"oneadapt_revision": ONEADAPT_REVISION} if base_name(method) == "oneadapt" else {}
      f.write(json.dumps({"schema": SCHEMA_VERSION, **identity, "method": method, "unit": unit,
                          **revision, "records": [r.to_json() for r in records]}) + "\n")
  results = _results(workload, done, sweeps, methods, static, cost)
  (out_dir / "results.json").write_text(json.dumps(results, indent=2))
  if verbose:
    print(report.table(results))
  return results


def _results(workload, done, sweeps, methods, static, cost) -> dict:
  identity = _identity(workload)
  results = {"schema": SCHEMA_VERSION, **identity, "proxy": identity["proxy"] or "default",
             "segments": workload.num_segments, "frames_per_segment": workload.frames_per_segment,
             "seconds_per_segment": workload.seconds_per_segment,
             "warmup_segments": workload.warmup_segments,
             "best_bytes": {str(i): workload.best_bytes(i) for i in range(workload.num_segments)},
             "cost_model": {"backward_cost": cost.backward_cost,
                            "spare_gpu_fps": cost.spare_gpu_fps},
             "device": str(jax.devices()[0]), "runs": [], "static": []}
  for (method, unit), records in done.items():
    if method == "static":
      if static:
        results["static"].append({"config": records[0].config,
                                  "total": report.summarise(records, workload, None, cost),
                                  "per_segment": [r.to_json() for r in records]})
      continue
    asked = {t.label: t for t in sweeps.get(method, ())}
    if unit not in asked:
      continue  # kept in the log, not asked for this time
    tradeoff = asked[unit]
    results["runs"].append({"method": method, "lambda": tradeoff.lam, "budget": tradeoff.budget,
                            "target": tradeoff.target,
                            "total": report.summarise(records, workload, tradeoff, cost),
                            "per_segment": [r.to_json() for r in records]})
  results["runs"].sort(key=lambda r: (list(METHODS).index(base_name(r["method"])), r["method"],
                                      r["lambda"] or 0, r["budget"] or 0, r["target"] or 0))
  results["comparison"] = report.compare(results["runs"])
  results["versus_static"] = report.versus_static(results["runs"], results["static"])
  return results


def run_config(config: dict, out_dir: pathlib.Path, *, subfolders: bool | None = None,
               progress: bool = True, verbose: bool = True) -> list[dict]:
  """Runs an experiment config (`oneadapt_jax.configs`): one `run` per source, each in
  `out_dir/<source>/` when there are several (or `subfolders`), every real send kept in its
  `outcomes.jsonl` (`WorkloadBase.keep_outcomes`). Returns each run's results."""
  from oneadapt_jax import workloads

  for name in config.get("methods") or ():  # before any workload is built
    method_of(name)
  sources = config.get("sources") or [None]
  if subfolders is None:
    subfolders = len(sources) > 1
  results = []
  for source in sources:
    workload = workloads.build(config["kind"], source=source, **config.get("workload", {}))
    where = out_dir / pathlib.Path(source or config["kind"]).stem if subfolders else out_dir
    if hasattr(workload, "keep_outcomes"):  # a rerun never sends a configuration twice
      workload.keep_outcomes(where / "outcomes.jsonl")
    results.append(run(workload, where, lambdas=config.get("lambdas", ()),
                       budgets=config.get("budgets", ()), methods=config.get("methods"),
                       static=config.get("static", True), progress=progress, verbose=verbose))
  return results


def read_results(path: pathlib.Path) -> dict:
  """A `results.json` of this version's schema (`SchemaError` otherwise, saying what to do)."""
  path = pathlib.Path(path)
  try:
    results = json.loads(path.read_text())
  except json.JSONDecodeError as err:
    raise ValueError(f"{path} is not valid JSON: {err}") from err
  check_schema(results, source=str(path))
  return results


__all__ = ("SchemaError", "applicable", "read_results", "run", "run_config")
