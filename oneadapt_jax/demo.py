"""`oneadapt demo`: OneAdapt against its baselines on the bundled clips, with real x264 bytes.

Runs the `demo` experiment config (`oneadapt_jax.configs.demo`): for each clip, every method at
every lambda of the sweep plus the static configurations (`oneadapt_jax.experiment.run`,
resumable per clip under `out/<clip>/`), then one `results.json` with every workload and the
comparison of OneAdapt with each baseline, and `tradeoff.png`.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

from oneadapt_jax import experiment, plots


def headline(workloads: Sequence[dict]) -> list[str]:
  """One line per baseline run that OneAdapt can be matched against, and one per OneAdapt run
  against the best static configuration in hindsight."""
  lines = []
  for results in workloads:
    for row in results.get("versus_static", []):
      static_accuracy = row["best_static_accuracy_at_these_bytes"]
      static_bytes = row["least_static_bytes_at_this_accuracy"]
      lines.append(
          f"{results['source']:<9}{'oneadapt':<10} lambda={row['lambda']:<5g} "
          f"accuracy {row['accuracy']:.3f} at {row['bytes']} B; best static in hindsight: "
          f"{'none as cheap' if static_accuracy is None else f'{static_accuracy:.3f}'} at these "
          f"bytes, {'none' if static_bytes is None else f'{static_bytes} B'} for this accuracy")
    for row in results["comparison"]:
      if row["lambda"] is None:
        continue
      ratio, gain = row["bytes_ratio_at_matched_accuracy"], row["accuracy_gain_at_matched_bytes"]
      lines.append(
          f"{results['source']:<9}{row['baseline']:<10} lambda={row['lambda']:<5g} "
          f"accuracy {row['baseline_accuracy']:.3f}  "
          f"OneAdapt bytes at matched accuracy: "
          f"{'none within 2 points' if ratio is None else f'{ratio:.2f}x'}  "
          f"accuracy at matched bytes: {'no run as cheap' if gain is None else f'{gain:+.3f}'}")
  return lines


def main(out_dir: pathlib.Path, config: dict, *, progress: bool = True) -> dict:
  """Runs `config` (one workload per source, each in `out_dir/<source>/`), then writes the
  summary `results.json` and `tradeoff.png` and prints the headline."""
  workloads = experiment.run_config(config, out_dir, subfolders=True, progress=progress)
  summary = {"schema": workloads[0]["schema"], "kind": config["kind"],
             "task": workloads[0]["task"], "workloads": workloads}
  (out_dir / "results.json").write_text(json.dumps(summary, indent=2))
  plot = plots.tradeoff(out_dir / "tradeoff.png", workloads)
  print("\n".join(headline(workloads)))
  print(f"wrote {out_dir / 'results.json'} and {plot}")
  return summary
