"""Does each accuracy proxy rank settings the way its real metric does?

`check(workload)` does it for any kind of stream: over its grid, each segment is sent for real,
the model runs on what was received, and the proxy is compared with the metric by Spearman rank
correlation. For video, `proxy_metric_correlation` runs it over resolution x QP of real x264
encodes on one segment, against the model's output on the original frames.

Measured here (x264 veryfast, 5 resolutions x 5 QPs; Spearman per segment):

| task | proxy | carphone 0, 1, 2, 3 | bikes |
|---|---|---|---|
| detection | soft count (the paper's; the controller's default) | 0.87, 0.51, 0.38, 0.56 | -0.61, -0.81, -0.43, -0.96 (segments 0, 2, 5, 8) |
| detection | expected F1 (`proxies.expected_f1`) | 0.87, 0.89, 0.80, 0.81 | -0.38, -0.83, -0.64, -0.89 |
| segmentation | expected IoU (`proxies.segmentation`) | 0.89, 0.74, 0.89, 0.87 | 0.43, 0.83, 0.54 (segments 2, 5, 8; no person in 0) |
| segmentation | mean decisiveness (the first choice) | 0.67, 0.41, 0.62, 0.69 | -0.43, -0.78, -0.69 |
| keypoints | face presence, log-probability (`proxies.keypoints`) | 0.90, 0.90, 0.94, 0.89 | (no face large enough) |
| keypoints | face presence, mesh on the whole frame (the first model) | 0.77, 0.69, 0.68, -0.40 | |

On vtest with the pedestrian detector (`clip_check("detection", "vtest")`, every 4th of the
79 segments, 5 x 5 grid) the paper's soft count over post-NMS detections has a per-segment
Spearman of 0.98 on average (0.95 at worst; 0.85 pooled over all 500 pairs), expected F1 0.95
(0.90), the soft count over every anchor 0.97 (0.92). Keypoints with BlazePose (every 10th
segment): the summed pose presence 0.88 on average (0.78 at worst, on segment 10, where tiny
blocky frames make the detector invent people whose poses the landmark model accepts), the mean
log presence 0.62.

Also tried, and worse (carphone, segmentation): foreground-weighted decisiveness (0.66 to
0.85), temporal IoU of consecutive masks (0.58 to 0.85), expected IoU times temporal IoU, and
tempered probabilities (T = 2 to 8). Keypoints: landmark jitter between frames (first and second
differences) is not informative (-0.6 to 0.8), because degraded inputs also freeze the mesh.
Detection: the mean top score, the number of faces after suppression, and the count of
undecided anchors (0.62 to 0.83 on carphone, the only one positive on bikes: 0.07 to 0.80).

What fixed segmentation and detection was to measure doubt relative to what was found, as IoU
and F1 do. What fixed keypoints was to run the mesh on the face BlazeFace finds, as MediaPipe
does (`models.FaceLandmark`). On bikes, no confidence-based proxy tracks F1. Compression makes
BlazeFace confidently find faces in the small, busy street scene that the best-quality frames
do not have (the reference has 0.1 to 1.7 faces a frame). The model is surer and more wrong,
which no function of its own confidence can see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

import models
from oneadapt_jax import data
from oneadapt_jax.core import Config, Workload
from oneadapt_jax.workloads.video import TASKS, VideoWorkload, default_model, task_spec

RESOLUTIONS = (0.25, 1 / 3, 0.5, 0.75, 1.0)
QPS = (20, 30, 38, 44, 50)


def check(workload: Workload, *, configs: Sequence[Config] | None = None,
          segments: Sequence[int] | None = None,
          proxies: Mapping[str, Callable] | None = None, progress: bool = False) -> dict:
  """How well a workload's proxy tracks its metric, for any kind of stream.

  Over each segment (default: all) and configuration (default: `workload.grid()`), the proxy on
  the model's outputs on what the real sender delivered (`Workload.observe`: one send, one
  forward pass) against the real metric. Returns Spearman's rho pooled over every pair, the
  per-segment rhos (segments where the metric varies) and their mean, the values, and for each
  of `proxies` (other proxies on the same outputs) its per-segment rhos.
  """
  configs = workload.grid() if configs is None else list(configs)
  segments = range(workload.num_segments) if segments is None else segments
  candidates = {None: workload.proxy, **(proxies or {})}  # None: the workload's own proxy
  jitted = {name: jax.jit(proxy) for name, proxy in candidates.items()}
  values = {name: [] for name in candidates}
  accuracies, per_segment = [], {name: [] for name in candidates}
  for i in tqdm(segments, desc=f"proxy check {workload.kind}", disable=not progress):
    these = {name: [] for name in candidates}
    metric = []
    for config in configs:
      outputs, outcome = workload.observe(i, config)
      for name, proxy in jitted.items():
        these[name].append(float(proxy(outputs)))
      metric.append(outcome.accuracy)
    for name in candidates:
      values[name].extend(these[name])
      if np.ptp(metric) > 0:
        per_segment[name].append(float(spearmanr(these[name], metric).statistic))
    accuracies.extend(metric)
  own = per_segment.pop(None)
  return {"kind": workload.kind, "pairs": len(accuracies),
          "spearman_pooled": float(spearmanr(values[None], accuracies).statistic),
          "spearman_per_segment": own,
          "spearman_per_segment_mean": float(np.mean(own)) if own else None,
          "segments_with_varying_metric": len(own), "proxy": values.pop(None),
          "metric": accuracies, "alternatives": per_segment}


def proxy_metric_correlation(task: str, clip: str, segment_index: int = 0, *,
                             resolutions: Sequence[float] = RESOLUTIONS, qps: Sequence[int] = QPS,
                             preset: str = "veryfast", progress: bool = False) -> dict:
  """Spearman(proxy, metric) for one video task on one segment over resolution x QP (`check`
  on that segment, at the full frame rate).

  Returns the task's proxy's `spearman`, its `proxy` and the `metric` values per setting, and
  `alternatives`: the Spearman of each of the task's other proxies on the same outputs.
  """
  segment = data.clip_segments(clip)[segment_index]
  result = _grid_check(task, clip, [segment], None, resolutions, qps, preset, progress)
  return {"task": task, "clip": clip, "segment": segment_index,
          "spearman": float(spearmanr(result["proxy"], result["metric"]).statistic),
          "proxy": result["proxy"], "metric": result["metric"],
          "alternatives": {name: rhos[0] if rhos else float("nan")
                           for name, rhos in result["alternatives"].items()}}


def clip_check(task: str, clip: str, *, every: int = 4, max_segments: int | None = None,
               model: str | None = None, resolutions: Sequence[float] = RESOLUTIONS,
               qps: Sequence[int] = QPS, preset: str = "veryfast", first_segment: int = 0,
               progress: bool = False) -> dict:
  """`check` of a video task's proxies over every `every`-th of `max_segments` segments of a
  clip from `first_segment` (default: all from the first), resolution x QP of real x264 encodes
  at the full frame rate, with `model` (default: the clip's, pedestrians and BlazePose on
  vtest). Returns `check`'s result with the `segments` used."""
  everything = data.clip_segments(clip)
  if isinstance(first_segment, bool) or not isinstance(first_segment, int) or not (
      0 <= first_segment < len(everything)):
    raise ValueError(f"first_segment must be an integer in [0, {len(everything)}) for clip "
                     f"{clip!r}, got {first_segment!r}")
  stop = None if max_segments is None else first_segment + max_segments
  segments = everything[first_segment:stop][::every]
  result = _grid_check(task, clip, segments, model, resolutions, qps, preset, progress)
  return {**result, "task": task, "clip": clip, "segments": [s.index for s in segments]}


def _grid_check(task, clip, segments, model, resolutions, qps, preset, progress) -> dict:
  """`check` of a video task on `segments` over resolution x QP at the full frame rate, with
  `model` (`None`: the clip's default); also reports which model ran."""
  spec = task_spec(task, model or default_model(task, clip))
  workload = VideoWorkload(task, clip, list(segments), models.load(spec.model), preset=preset,
                           model_name=spec.model)
  configs = [{"resolution": float(r), "qp": float(q), "frame_rate": segments[0].fps}
             for r in resolutions for q in qps]
  result = check(workload, configs=configs, proxies=spec.alternatives, progress=progress)
  return {**result, "model": spec.model}


def print_clip_check(result: dict) -> None:
  """The per-segment Spearman of each proxy of a `clip_check`, and their means."""
  rows = {"(default)": result["spearman_per_segment"], **result["alternatives"]}
  print(f"{result['task']} on {result['clip']} ({result['model']}), segments "
        f"{result['segments']}:")
  for name, rhos in rows.items():
    values = ", ".join(f"{r:.2f}" for r in rhos)
    print(f"  {name:<14} mean {np.mean(rhos):.3f}  min {np.min(rhos):.3f}  [{values}]")


CASES = tuple((task, "carphone", i) for task in TASKS for i in range(4)) + (
    ("detection", "bikes", 0), ("segmentation", "bikes", 5))


def main(cases=CASES, progress: bool = True) -> list[dict]:
  """Prints the Spearman of each task's proxy (and its alternatives) on each case."""
  results = [proxy_metric_correlation(t, c, i, progress=progress) for t, c, i in cases]
  print(f"{'task':<14}{'clip':<10}{'segment':>8}{'Spearman':>10}{'metric range':>16}  others")
  for r in results:
    others = ", ".join(f"{name} {value:.3f}" for name, value in r["alternatives"].items())
    print(f"{r['task']:<14}{r['clip']:<10}{r['segment']:>8}{r['spearman']:>10.3f}"
          f"{min(r['metric']):>8.2f}-{max(r['metric']):.2f}  {others}")
  return results
