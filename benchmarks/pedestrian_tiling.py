"""How the pedestrian detector's recall and cost on vtest depend on how the frame is tiled.

Each grid (rows x columns of tiles overlapping by a quarter, each resized to the network's
300x300) runs on the same vtest frames (frame 5 of every `--every`-th segment). There is no
ground truth, so recall is measured against the union of the confident boxes (score at least
0.7) that any grid found, merged at IoU 0.5: the share of those each grid finds at IoU 0.5 with
its usual 0.5 threshold. Time is the median per frame of the jitted detector after compilation.

    python benchmarks/pedestrian_tiling.py [--every 4] [--repeats 3] [--out DIR]

Prints a table with the machine and writes `pedestrian_tiling.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from _common import machine, median_time  # benchmarks/ runs as a script folder

import models
from models import _ssdlite
from oneadapt_jax import data, metrics

GRIDS = ((1, 1), (2, 2), (2, 3), (3, 3), (3, 4))


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--every", type=int, default=4, help="every N-th segment's frame 5")
  parser.add_argument("--grids", nargs="+", default=[f"{r}x{c}" for r, c in GRIDS])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  segments = data.clip_segments("vtest")[::args.every]
  frames = jnp.asarray(np.stack([s.frames[5] for s in segments]), jnp.float32) / 255.0
  size = frames.shape[1:3]
  found, seconds = {}, {}
  for name in args.grids:
    rows, cols = (int(v) for v in name.split("x"))
    detector = models.PedestrianDetector(grid=(rows, cols))
    run = jax.jit(detector)
    seconds[name] = median_time(lambda run=run: run(frames), args.repeats) / len(frames)
    outputs = run(frames)
    found[name] = [models.pedestrian_detections(jax.tree.map(lambda a, i=i: np.asarray(a[i]),
                                                             outputs), size)
                   for i in range(len(frames))]
  recall = {name: [] for name in found}
  for i in range(len(frames)):
    confident = np.concatenate([d[i].boxes[d[i].scores >= 0.7] for d in found.values()])
    if len(confident) == 0:
      continue
    scores = np.concatenate([d[i].scores[d[i].scores >= 0.7] for d in found.values()])
    union = confident[_ssdlite.nms(confident, scores, iou_threshold=0.5)]
    for name, detections in found.items():
      recall[name].append(len(metrics.match_boxes(detections[i].boxes, union)) / len(union))
  rows = [{"grid": name, "tiles": int(np.prod([int(v) for v in name.split("x")])),
           "seconds_per_frame": seconds[name],
           "detections_per_frame": float(np.mean([len(d.boxes) for d in found[name]])),
           "recall_of_union": float(np.mean(recall[name]))} for name in found]
  print(f"pedestrian detector tiling on vtest ({len(frames)} frames of {size[1]}x{size[0]}); "
        f"{machine()}")
  print(f"{'grid':<6}{'tiles':>6}{'ms/frame':>10}{'found/frame':>13}{'recall of union':>17}")
  for r in rows:
    print(f"{r['grid']:<6}{r['tiles']:>6}{1000 * r['seconds_per_frame']:>10.0f}"
          f"{r['detections_per_frame']:>13.2f}{r['recall_of_union']:>17.2f}")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "pedestrian_tiling.json").write_text(json.dumps(
      {"machine": machine(), "frames": len(frames), "rows": rows}, indent=2))
  return rows


if __name__ == "__main__":
  main()
