"""Trade-off plots of a `results.json`: accuracy against bandwidth and against server GPU work."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

STYLE = {  # method: (colour, marker)
    "oneadapt": ("tab:red", "o"),
    "awstream": ("tab:blue", "s"),
    "chameleon": ("tab:green", "^"),
    "reducto": ("tab:purple", "D"),
    "oracle": ("black", "*"),
}


def gpu_frames(total: dict, segments: int) -> float:
  """Server GPU work per scored segment in forward-equivalents: inference on what was sent,
  profiling, and AccGrad priced by the cost model (`total["gpu"]`)."""
  return total["gpu"] / segments


def tradeoff(path: pathlib.Path, workloads: Sequence[dict]) -> pathlib.Path:
  """One row per workload: accuracy vs bytes relative to the best quality, and accuracy vs
  server DNN passes per segment. OneAdapt's runs over the trade-off sweep are joined by a line
  (sorted by bytes); the static configurations are grey dots."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(len(workloads), 2, figsize=(11, 4.2 * len(workloads)), squeeze=False)
  for row, results in zip(axes, workloads):
    segments = results["segments"] - results.get("warmup_segments", 0)
    for ax, x_of, label in (
        (row[0], lambda t: t["relative_bytes"], "bytes sent / bytes at best quality"),
        (row[1], lambda t: gpu_frames(t, segments),
         "server GPU per segment, forward-equivalents (inference + AccGrad + profiling)")):
      static = [s["total"] for s in results.get("static", [])]
      if static:
        ax.scatter([x_of(t) for t in static], [t["accuracy"] for t in static], s=10,
                   color="0.75", label="static configurations", zorder=1)
      for method, (colour, marker) in STYLE.items():
        runs = [r for r in results["runs"] if r["method"] == method]
        if not runs:
          continue
        points = sorted((x_of(r["total"]), r["total"]["accuracy"]) for r in runs)
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker=marker, color=colour, ls="-" if method == "oneadapt" else "none",
                ms=8 if method == "oracle" else 6, label=method, zorder=3)
      ax.set_xlabel(label)
      ax.set_ylabel("accuracy (F1 vs best-quality output)" if results["task"] == "detection"
                    else "accuracy vs best-quality output")
      ax.set_ylim(-0.02, 1.02)
      ax.grid(alpha=0.3)
    row[0].set_xscale("log")
    row[1].set_xscale("log")  # the oracle's exhaustive profile is two orders above the rest
    row[0].set_title(f"{results['task']} on {results['source']}: bandwidth")
    row[1].set_title(f"{results['task']} on {results['source']}: server GPU")
    row[0].legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
