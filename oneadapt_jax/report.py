"""Reading runs: totals over segments, OneAdapt against each baseline and against the best static
configuration in hindsight, and a text table. All on `results.json` dictionaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oneadapt_jax.baselines import BASELINES
from oneadapt_jax.core import CostModel, Record, Tradeoff, Workload, utility


def summarise(records: Sequence[Record], workload: Workload, tradeoff: Tradeoff | None,
              cost: CostModel | None = None) -> dict:
  """Totals over the scored segments (the warm-up left out): mean accuracy, real bytes (also
  relative to the best-quality configuration's), every cost counted in frames, and GPU work in
  forward-equivalents (`cost`); what the warm-up cost in profiling is reported beside them."""
  cost = cost or CostModel()
  warm = [r for r in records if r.segment < workload.warmup_segments]
  records = [r for r in records if r.segment >= workload.warmup_segments]
  best = sum(workload.best_bytes(r.segment) for r in records)
  total_bytes = sum(r.bytes for r in records)
  accuracy = float(np.mean([r.accuracy for r in records]))
  seconds = len(records) * workload.seconds_per_segment
  total = {"accuracy": accuracy, "bytes": total_bytes, "relative_bytes": total_bytes / best,
           "bytes_per_second": total_bytes / seconds,
           "dnn_frames": sum(r.dnn_frames for r in records),
           "backward_passes": sum(r.backward_passes for r in records),
           "profiling_frames": sum(r.profiling_frames for r in records),
           "camera_encodes": sum(r.camera_encodes for r in records),
           "gpu": cost.total_gpu(records),
           "warmup_profiling_frames": sum(r.profiling_frames for r in warm)}
  if tradeoff is not None and tradeoff.lam is not None:
    total["utility"] = utility(accuracy, total_bytes, best, tradeoff.lam)
  return total


def _gpu(total: dict) -> float:
  """GPU work of a run's totals in forward-equivalents (`summarise`'s `gpu`: inference,
  profiling and AccGrad at the cost model's price)."""
  if "gpu" in total:
    return total["gpu"]
  return total["dnn_frames"] + total["profiling_frames"] + total.get("backward_passes", 0)


def compare(runs: Sequence[dict], *, tolerance: float = 0.02) -> list[dict]:
  """OneAdapt against each baseline run, on the trade-off curve OneAdapt traces over the sweep.

  At matched accuracy: the least bandwidth (and GPU work, AccGrad included) of a OneAdapt run
  whose accuracy is within `tolerance` of the baseline's, as a fraction of the baseline's. At
  matched bandwidth: the accuracy of the most accurate OneAdapt run that sends no more bytes,
  minus the baseline's.
  `None` where no OneAdapt run qualifies.
  """
  ours = [r["total"] for r in runs if r["method"] == "oneadapt"]
  rows = []
  for run in runs:
    if run["method"] not in BASELINES:
      continue
    theirs = run["total"]
    at_accuracy = [t for t in ours if t["accuracy"] >= theirs["accuracy"] - tolerance]
    at_bandwidth = [t for t in ours if t["bytes"] <= theirs["bytes"]]
    cheapest = min(at_accuracy, key=lambda t: t["bytes"], default=None)
    gpu = min(at_accuracy, key=_gpu, default=None)
    rows.append({
        "baseline": run["method"], "lambda": run.get("lambda"), "budget": run.get("budget"),
        "target": run.get("target"),
        "baseline_accuracy": theirs["accuracy"], "baseline_bytes": theirs["bytes"],
        "bytes_ratio_at_matched_accuracy":
            None if cheapest is None else cheapest["bytes"] / theirs["bytes"],
        "gpu_frames_ratio_at_matched_accuracy":
            None if gpu is None else _gpu(gpu) / _gpu(theirs),
        "accuracy_gain_at_matched_bytes":
            None if not at_bandwidth else max(t["accuracy"] for t in at_bandwidth)
            - theirs["accuracy"]})
  return rows


def versus_static(runs: Sequence[dict], static: Sequence[dict], *, tolerance: float = 0.02
                  ) -> list[dict]:
  """Each OneAdapt run against the static configurations, i.e. the best fixed configuration in
  hindsight (which only a profile of the whole stream could pick): the most accurate one that
  sends no more bytes, and the cheapest one within `tolerance` of OneAdapt's accuracy."""
  rows = []
  for run in runs:
    if run["method"] != "oneadapt":
      continue
    ours = run["total"]
    cheaper = [s["total"] for s in static if s["total"]["bytes"] <= ours["bytes"]]
    as_good = [s["total"] for s in static if s["total"]["accuracy"] >= ours["accuracy"] - tolerance]
    rows.append({"lambda": run["lambda"], "budget": run["budget"], "accuracy": ours["accuracy"],
                 "bytes": ours["bytes"],
                 "best_static_accuracy_at_these_bytes":
                     max((t["accuracy"] for t in cheaper), default=None),
                 "least_static_bytes_at_this_accuracy":
                     min((t["bytes"] for t in as_good), default=None)})
  return rows


def table(results: dict) -> str:
  """The runs of a `results.json` as a text table."""
  lines = [(f"{results['task']} on {results['source']} ({results['segments']} segments, "
            f"{results['device']})"),
           (f"{'method':<10}{'trade-off':>16}{'accuracy':>10}{'rel. bytes':>12}{'dnn':>6}"
            f"{'bwd':>6}{'profiling':>11}")]
  for entry in results["runs"]:
    t = entry["total"]
    label = (f"lambda={entry['lambda']:g}" if entry["lambda"] is not None
             else f"{entry['budget']:g} B/s" if entry["budget"] is not None
             else f"target={entry.get('target'):g}")
    lines.append(f"{entry['method']:<10}{label:>16}{t['accuracy']:>10.3f}"
                 f"{t['relative_bytes']:>12.3f}{t['dnn_frames']:>6}{t['backward_passes']:>6}"
                 f"{t['profiling_frames']:>11}")
  return "\n".join(lines)
