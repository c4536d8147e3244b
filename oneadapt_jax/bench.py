"""`oneadapt bench`: every method against every other, curve against curve, by one protocol.

For each bench config (`oneadapt_jax/configs/bench.py`: a clip, a task and a knob chain):

1. the workload with its warm-up prefix, its outcomes kept in `outcomes.jsonl` (a killed bench
   never sends a configuration twice);
2. the cost model: `backward_cost` measured on the model at the clip's frame size (the
   controller's AccGrad step against a forward pass of the model on the same frames; kept in
   `cost.json`), the spare GPU rate from the config;
3. every method over its own trade-off sweep, and every grid configuration held fixed, through
   `oneadapt_jax.experiment.run` (resumable unit by unit);
4. the curves compared (`oneadapt_jax.curves`): OneAdapt against each baseline, the best static
   configuration in hindsight (the static frontier) and the oracle, on the config's cost axis and
   on GPU work, with bootstrap confidence intervals over the scored segments; written to
   `report.md`, `comparison.json` and `curves.png`.
"""

from __future__ import annotations

import functools
import gc
import json
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from oneadapt_jax import accgrad, curves, experiment
from oneadapt_jax.baselines import base_name
from oneadapt_jax.core import Controller, CostModel, Tradeoff, Workload


def measure_backward_cost(workload: Workload, controller: Controller | None = None, *,
                          repeats: int = 9, warmup: int = 3) -> dict:
  """What one AccGrad frame costs the server in forward-equivalents, measured on `workload`'s
  model after compilation: the step and a plain forward pass timed in turn, `repeats` times
  after `warmup` calls of each (`interleaved_times`), and the median of the repeats' own ratios
  (`backward_cost_each`). On 2 CPU cores the server's pass on vtest's SSDLite took 65 to 375 ms
  from call to call against a steady 31 to 47 ms forward pass, slowest in the first calls after
  compiling: three repeats after one warm-up read 1.06, 2.21 and 3.19 forward-equivalents
  (benchmarks/COMPARISON.md), so the defaults are nine after three:

  - the decoded estimator (the default): the model's forward pass through `jax.vjp` (keeping
    activations) and its backward pass on the picked frames, less a plain forward pass on them
    (which inference runs anyway), against that forward pass. The camera's `vjp` through the
    knob chain is timed too (`camera_s`), camera-side work the server does not pay;
  - the fused estimator: its whole step (knob chain, model and proxy, forward and backward)
    against a forward pass of the model alone on as many frames."""
  bound = (controller or Controller()).bind(workload)
  raw = workload.raw(workload.warmup_segments)
  setting, _ = bound.init(1.0)
  frames = workload.shown(setting, raw, bound.picked)
  forward = jax.jit(lambda state, x: jax.tree.leaves(nnx.merge(bound.graphdef, state)(x)))
  run_forward = functools.partial(forward, bound.model_state, frames)
  measured = {"estimator": bound.controller.estimator, "frames": len(bound.picked),
              "device": str(jax.devices()[0]),
              "machine": platform.processor() or platform.machine()}
  median = statistics.median
  if bound.controller.estimator == "fused":
    times = interleaved_times({"forward": run_forward, "accgrad": lambda: bound.jitted.gradients(
        bound.model_state, setting, raw)}, repeats, warmup=warmup)
    ratios = [a / f for a, f in zip(times["accgrad"], times["forward"])]
    return {"backward_cost": median(ratios), "backward_cost_each": ratios,
            "accgrad_s": median(times["accgrad"]), "forward_s": median(times["forward"]),
            **measured}
  server = jax.jit(lambda state, x: accgrad.server_grad(bound.graphdef, workload.proxy, state, x))
  times = interleaved_times({"forward": run_forward,
                             "server": lambda: server(bound.model_state, frames)}, repeats,
                            warmup=warmup)
  # The server's pass less the forward pass inference ran anyway, each repeat's pair timed in turn.
  ratios = [max(v - f, 0.0) / f for v, f in zip(times["server"], times["forward"])]
  cotangent = jnp.ones_like(frames)
  camera = interleaved_times({"camera": lambda: bound.jitted.camera(setting, raw, cotangent)},
                             repeats, warmup=warmup)["camera"]
  return {"backward_cost": median(ratios), "backward_cost_each": ratios,
          "server_s": median(times["server"]), "forward_s": median(times["forward"]),
          "camera_s": median(camera), **measured}


def interleaved_times(fns: Mapping[str, Callable], repeats: int, *,
                      warmup: int = 1) -> dict[str, list[float]]:
  """Each of `fns` (name -> callable) timed `repeats` times after `warmup` calls of each (the
  first compiles), one call of each in turn per repeat: the times of one repeat are taken
  within seconds of each other, so a ratio of two of them sees the machine in the same state
  (its speed drifts 20% and more within an hour, benchmarks/RESULTS.md). Returns each name's
  times in repeat order.

  Python's cyclic garbage collector is off while the repeats run (collected once before them,
  its state restored after), as `timeit` does: a full collection walks every object the process
  holds, and in `benchmarks/run_all.py`'s process, after the first script, one took 0.3 to
  0.6 s, which landed in a 10 ms call now and then (carphone's server pass read 13 and 14
  forward-equivalents in two repeats of five, 1.1 to 1.2 in the others; benchmarks/RESULTS.md).
  What is timed is the calls' own work, not the pauses of a collector sized by the rest of the
  process."""
  if repeats < 1:
    raise ValueError(f"repeats must be at least 1, got {repeats}")
  if warmup < 1:
    raise ValueError(f"warmup must be at least 1 (the call that compiles), got {warmup}")
  for _ in range(warmup):
    for fn in fns.values():
      jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  collecting = gc.isenabled()
  gc.collect()
  gc.disable()
  try:
    for _ in range(repeats):
      for name, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times[name].append(time.perf_counter() - start)
  finally:
    if collecting:
      gc.enable()
  return times


def _cost_model(workload: Workload, config: Mapping, out_dir: pathlib.Path) -> tuple[CostModel,
                                                                                     dict]:
  spec = dict(config.get("cost") or {})
  measured = {}
  if spec.get("backward_cost") is None:
    path = out_dir / "cost.json"
    if path.exists():
      measured = json.loads(path.read_text())
    # measured for another estimator (before AccGrad on the decoded frames): measured again
    if measured.get("estimator") != Controller().estimator:
      measured = measure_backward_cost(workload)
      path.write_text(json.dumps(measured, indent=1))
    spec["backward_cost"] = measured["backward_cost"]
  return CostModel(**spec), measured


def sweeps_of(config: Mapping) -> dict[str, list[Tradeoff]]:
  """The config's `sweeps` (method -> trade-off labels) as trade-offs."""
  return {method: [Tradeoff.parse(label) for label in labels]
          for method, labels in config["sweeps"].items()}


def run_bench(config: Mapping, out_dir: pathlib.Path, *, progress: bool = True,
              resamples: int | None = None) -> dict:
  """One bench config (a dict from `configs.get("bench:NAME")`) into `out_dir`; returns its
  comparison (also in `comparison.json`, `report.md` and `curves.png`)."""
  from oneadapt_jax import workloads

  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  (source,) = config.get("sources") or [None]
  workload = workloads.build(config["kind"], source=source, **config.get("workload", {}))
  kept = workload.keep_outcomes(out_dir / "outcomes.jsonl")
  if progress and kept:
    print(f"{config['name']}: {kept} outcomes read back from {out_dir / 'outcomes.jsonl'}")
  cost, measured = _cost_model(workload, config, out_dir)
  sweeps = sweeps_of(config)
  results = experiment.run(workload, out_dir, methods=list(sweeps), sweeps=sweeps,
                           static=config.get("static", True), cost=cost, progress=progress,
                           verbose=False)
  return write_report(config, out_dir, results, measured, resamples=resamples)


def write_report(config: Mapping, out_dir: pathlib.Path, results: Mapping | None = None,
                 measured: Mapping | None = None, *, resamples: int | None = None) -> dict:
  """`comparison.json`, `report.md` and `curves.png` of a bench config's run in `out_dir`
  (`results`: its `results.json`, read from there by default; `measured`: its `cost.json`),
  without running anything. Returns the comparison."""
  out_dir = pathlib.Path(out_dir)
  if results is None:
    results = experiment.read_results(out_dir / "results.json")
  if measured is None:
    path = out_dir / "cost.json"
    measured = json.loads(path.read_text()) if path.exists() else {}
  comparison = compare_results(results, axis=config.get("axis", "bytes"),
                               resamples=resamples or config.get("resamples", 1000))
  comparison |= {"name": config["name"], "measured_cost": measured,
                 "cost_model": results["cost_model"]}
  (out_dir / "comparison.json").write_text(json.dumps(comparison, indent=1))
  (out_dir / "report.md").write_text(report(comparison))
  plot(comparison, out_dir / "curves.png")
  return comparison


def compare_results(results: Mapping, *, axis: str = "bytes", resamples: int = 1000) -> dict:
  """OneAdapt's curve against every other curve of a `results.json`, on `axis` and on GPU."""
  runs = curves.runs_of(results)
  by_method: dict[str, list[curves.Run]] = {}
  for run in runs:
    by_method.setdefault(run.method, []).append(run)
  ours = by_method.get("oneadapt", [])
  rows = []
  for method, theirs in by_method.items():
    if method == "oneadapt" or not ours:
      continue
    if method == "static":  # the best static configuration in hindsight: the static frontier
      theirs = _static_frontier(theirs, axis)
    # The oracle's GPU is an exhaustive profile of every segment: a bound on accuracy and
    # bandwidth, not a competitor on GPU.
    for on in dict.fromkeys((axis,) if method == "oracle" else (axis, "gpu")):
      rows.append({"ours": "oneadapt", "theirs": method, "axis": on,
                   **curves.compare(ours, theirs, on, resamples=resamples)})
  # Each OneAdapt variant's curve against the baselines' (on `axis` only): which variant is best.
  # The default's are the rows above.
  baselines = [m for m in by_method if base_name(m) != "oneadapt" and m != "oracle"]
  done = {row["theirs"]: row for row in rows if row["axis"] == axis}
  variants = [done[b] if m == "oneadapt" else
              {"ours": m, "theirs": b, "axis": axis,
               **curves.compare(by_method[m], _static_frontier(by_method[b], axis)
                                if b == "static" else by_method[b], axis, resamples=resamples)}
              for m in by_method if base_name(m) == "oneadapt" for b in baselines]
  points = {method: [{"label": r.label, **r.point(),
                      **({} if method == "static" else curves.point_intervals(r))}
                     for r in group]
            for method, group in by_method.items()}
  return {"task": results["task"], "source": results["source"], "axis": axis,
          "segments": results["segments"], "warmup_segments": results["warmup_segments"],
          "frames_per_segment": results["frames_per_segment"], "device": results["device"],
          "resamples": resamples, "points": points, "rows": rows, "variants": variants}


def _static_frontier(runs: list, axis: str) -> list:
  """The static configurations on the frontier: the best static configuration in hindsight."""
  front = curves.frontier([(r.point()["accuracy"], r.point()[axis]) for r in runs])
  return [r for r in runs if any(np.allclose((r.point()["accuracy"], r.point()[axis]), f)
                                 for f in front)]


def _ci(interval, scale=100.0, fmt="{:+.1f}") -> str:
  if interval is None:
    return "n/a"
  return f"[{fmt.format(interval[0] * scale)}, {fmt.format(interval[1] * scale)}]"


def _pct(value, fmt="{:+.1f}%") -> str:
  return "n/a" if value is None else fmt.format(value * 100)


AXIS_NAMES = {"bytes": "bandwidth", "frames": "frames inferred", "gpu": "GPU"}


def report(comparison: Mapping) -> str:
  """The comparison as Markdown: each method's points, then OneAdapt against each curve."""
  scored = comparison["segments"] - comparison["warmup_segments"]
  cost = comparison["cost_model"]
  header = (f"{scored} scored segments after a warm-up of {comparison['warmup_segments']}; "
            f"{comparison['resamples']} bootstrap resamples of the segments (95% intervals); "
            f"AccGrad frame = {cost['backward_cost']:.2f} forward-equivalents (measured; one a "
            f"segment is {cost['backward_cost'] / comparison['frames_per_segment']:.0%} of "
            f"full-rate inference); "
            f"spare GPU {cost['spare_gpu_fps']:g} frames/s; {comparison['device']}.")
  columns = ("| method | trade-off | accuracy | relative bytes | frames inferred / segment "
             "| GPU / segment (fwd-eq.) |")
  lines = [f"## {comparison['name']}: {comparison['task']} on {comparison['source']}", "",
           header, "", columns, "|---|---|---|---|---|---|"]
  for method, points in comparison["points"].items():
    if method == "static":
      continue
    for p in points:
      lines.append(f"| {method} | {p['label']} | {p['accuracy']:.3f} | {p['bytes']:.3f} | "
                   f"{p['frames']:.2f} | {p['gpu']:.1f} |")
  statics = comparison["points"].get("static", [])
  if statics:
    lines.append(f"| static | {len(statics)} configurations, frontier below | | | | |")
  legend = ("OneAdapt against each curve: **saving** = 1 - OneAdapt's cost at their "
            "accuracy / theirs (interpolated on OneAdapt's frontier; positive: OneAdapt "
            "cheaper), **gain** = OneAdapt's accuracy at their cost - theirs (points), each the "
            "mean over their points inside the range OneAdapt's frontier spans, interpolated, "
            "never extrapolated (n/a: none).")
  columns = ("| against | on | saving at matched accuracy | 95% CI | accuracy gain at matched "
             "cost | 95% CI | their points | theirs beaten by OneAdapt's | OneAdapt's beaten by "
             "theirs |")
  lines += ["", legend + " **Beaten**: another point at least as accurate and at most as "
            "costly, better in one.", "", columns, "|---|---|---|---|---|---|---|---|---|"]
  for row in comparison["rows"]:
    gain = row["mean_gain"]
    lines.append(f"| {row['theirs']} | {AXIS_NAMES[row['axis']]} | {_pct(row['mean_saving'])} "
                 f"| {_ci(row['mean_saving_ci'])} | "
                 f"{'n/a' if gain is None else f'{gain * 100:+.1f} pts'} | "
                 f"{_ci(row['mean_gain_ci'])} | {len(row['points'])} | "
                 f"{row['theirs_beaten']} of {len(row['points'])} | "
                 f"{row['ours_beaten']} of {len(comparison['points']['oneadapt'])} |")
  lines += ["", "Per point:", "",
            "| against | on | their point | accuracy | cost | saving (95% CI) | gain (95% CI) |",
            "|---|---|---|---|---|---|---|"]
  for row in comparison["rows"]:
    for k, p in enumerate(row["points"]):
      saving, gain = row["saving"][k], row["gain"][k]
      lines.append(f"| {row['theirs']} | {AXIS_NAMES[row['axis']]} | {p['label']} | {p['accuracy']:.3f} | "
                   f"{p[row['axis']]:.3f} | {_pct(saving)} {_ci(row['saving_ci'][k])} | "
                   f"{'n/a' if gain is None else f'{gain * 100:+.1f}'} "
                   f"{_ci(row['gain_ci'][k])} |")
  variants = comparison.get("variants") or []
  # Beside the default's rows above, or in their place when a sweep runs variants alone.
  if any(row["ours"] != "oneadapt" for row in variants):
    title = (f"OneAdapt's variants against the other curves on "
             f"{AXIS_NAMES[comparison['axis']]} (saving and gain as above, each variant in "
             "OneAdapt's place):")
    columns = ("| variant | against | saving at matched accuracy | 95% CI | accuracy gain at "
               "matched cost | 95% CI | their points inside its range |")
    lines += ["", title, "", columns, "|---|---|---|---|---|---|---|"]
    for row in variants:
      gain = row["mean_gain"]
      inside = sum(g is not None for g in row["gain"])
      lines.append(f"| {row['ours']} | {row['theirs']} | {_pct(row['mean_saving'])} | "
                   f"{_ci(row['mean_saving_ci'])} | "
                   f"{'n/a' if gain is None else f'{gain * 100:+.1f} pts'} | "
                   f"{_ci(row['mean_gain_ci'])} | {inside} of {len(row['points'])} |")
  return "\n".join(lines) + "\n"


STYLE = {"oneadapt": ("tab:red", "o"), "awstream": ("tab:blue", "s"),
         "chameleon": ("tab:green", "^"), "reducto": ("tab:purple", "D"),
         "dds": ("tab:orange", "v"), "oracle": ("black", "*"), "static": ("0.6", ".")}


#: OneAdapt's ablations, in the order they come. No grey: the static configurations are grey
#: dots, and a grey variant (tab:gray, the fifth until 2026-12-02) was lost among them.
VARIANT_COLOURS = ("tab:pink", "tab:olive", "tab:cyan", "tab:brown", "navy")
#: A variant past the colours' count takes the next marker, so no two variants look alike.
VARIANT_MARKERS = ("x", "+", "1")


def plot(comparison: Mapping, path: pathlib.Path, *, resamples: int = 200) -> pathlib.Path:
  """Accuracy against the cost axis and against GPU, one curve per method (its frontier as a
  line, every point as a marker) with the 95% interval of each point's accuracy and cost drawn
  as error bars."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  axes_names = list(dict.fromkeys((comparison["axis"], "gpu")))
  fig, axes = plt.subplots(1, len(axes_names), figsize=(6 * len(axes_names), 4.5), squeeze=False)
  for ax, axis in zip(axes[0], axes_names):
    variants = [m for m in comparison["points"] if m not in STYLE]  # OneAdapt's ablations
    for method, points in comparison["points"].items():
      k = variants.index(method) if method in variants else 0
      colour, marker = STYLE.get(method) or (
          VARIANT_COLOURS[k % len(VARIANT_COLOURS)],
          VARIANT_MARKERS[(k // len(VARIANT_COLOURS)) % len(VARIANT_MARKERS)])
      xs = [p[axis] for p in points]
      ys = [p["accuracy"] for p in points]
      xerr = [[p[axis] - p.get(f"{axis}_ci", [p[axis]] * 2)[0] for p in points],
              [p.get(f"{axis}_ci", [p[axis]] * 2)[1] - p[axis] for p in points]]
      yerr = [[p["accuracy"] - p.get("accuracy_ci", [p["accuracy"]] * 2)[0] for p in points],
              [p.get("accuracy_ci", [p["accuracy"]] * 2)[1] - p["accuracy"] for p in points]]
      small = method == "static"
      ax.errorbar(xs, ys, xerr=None if small else xerr, yerr=None if small else yerr,
                  fmt=marker, color=colour, ms=4 if small else 6, alpha=0.5 if small else 0.9,
                  capsize=2, label=method, zorder=1 if small else 3)
      front = curves.frontier(list(zip(ys, xs)))
      ax.plot(front[:, 1], front[:, 0], color=colour, lw=1 if small else 1.5, alpha=0.8)
    ax.set_xlabel({"bytes": "bytes sent / bytes at best quality",
                   "frames": "frames inferred per segment",
                   "gpu": "server GPU per segment (forward-equivalents)"}[axis])
    ax.set_ylabel("accuracy against the best-quality output")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
  axes[0][0].set_title(f"{comparison['name']}: {comparison['task']} on {comparison['source']}")
  axes[0][0].legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def run_suite(names: Sequence[str], out_dir: pathlib.Path, *, progress: bool = True,
              overrides: Sequence[str] = ()) -> list[dict]:
  """Bench configs by name (`bench:NAME`) into `out_dir/NAME/`, and `out_dir/report.md` with
  every one's report."""
  from oneadapt_jax import configs

  out_dir = pathlib.Path(out_dir)
  done = []
  for name in names:
    config = configs.get(name if ":" in name else f"bench:{name}")
    for assignment in overrides:
      config = configs.override(config, assignment)
    done.append(run_bench(config, out_dir / config["name"], progress=progress))
    out_dir.joinpath("report.md").write_text(
        "# oneadapt bench\n\n" + "\n".join(report(c) for c in done))
  return done


__all__ = ("compare_results", "interleaved_times", "measure_backward_cost", "plot", "report",
           "run_bench", "run_suite", "sweeps_of", "write_report")
