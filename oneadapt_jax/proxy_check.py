"""Does each accuracy proxy rank settings the way its real metric does?

Over a grid of resolution x QP, each segment is really encoded with x264, the model runs on the
decoded frames, and the proxy (`oneadapt_jax.proxies`) is compared with the metric against the
model's output on the original frames (`oneadapt_jax.metrics`) by Spearman rank correlation.

Measured here (x264 veryfast, 5 resolutions x 5 QPs; Spearman per segment):

| task | proxy | carphone 0, 1, 2, 3 | bikes |
|---|---|---|---|
| detection | soft count (the paper's; the controller's default) | 0.87, 0.51, 0.38, 0.56 | -0.61, -0.81, -0.43, -0.96 (segments 0, 2, 5, 8) |
| detection | expected F1 (`proxies.expected_f1`) | 0.87, 0.89, 0.80, 0.81 | -0.38, -0.83, -0.64, -0.89 |
| segmentation | expected IoU (`proxies.segmentation`) | 0.89, 0.74, 0.89, 0.87 | 0.43, 0.83, 0.54 (segments 2, 5, 8; no person in 0) |
| segmentation | mean decisiveness (the first choice) | 0.67, 0.41, 0.62, 0.69 | -0.43, -0.78, -0.69 |
| keypoints | face presence, log-probability (`proxies.keypoints`) | 0.90, 0.90, 0.94, 0.89 | (no face large enough) |
| keypoints | face presence, mesh on the whole frame (the first model) | 0.77, 0.69, 0.68, -0.40 | |

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

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

import models
from oneadapt_jax import codec, data, metrics, proxies


@dataclasses.dataclass(frozen=True)
class Task:
  """A model, the proxy the controller ascends, how to post-process, the metric, and other
  proxies the check reports alongside."""
  model: str
  proxy: Callable
  post: Callable
  metric: Callable
  alternatives: dict = dataclasses.field(default_factory=dict)


TASKS = {
    "detection": Task("blazeface", proxies.detection,
                      lambda m, o, size: models.postprocess("blazeface", m, o, size).boxes,
                      metrics.detection, {"expected_f1": proxies.expected_f1}),
    "segmentation": Task("selfie_segmentation", proxies.segmentation,
                         lambda m, o, size: np.asarray(o["mask"]) > 0.5, metrics.segmentation),
    "keypoints": Task("face_landmark", proxies.keypoints,
                      lambda m, o, size: np.asarray(o["landmarks"])[:, :2], metrics.keypoints),
}
RESOLUTIONS = (0.25, 1 / 3, 0.5, 0.75, 1.0)
QPS = (20, 30, 38, 44, 50)


def per_frame(task: Task, model, outputs: dict, frame_size: tuple[int, int]) -> list:
  """Post-processes a segment's outputs (leading axis = frames) frame by frame."""
  count = jax.tree.leaves(outputs)[0].shape[0]
  return [task.post(model, jax.tree.map(lambda a: np.asarray(a[i]), outputs), frame_size)
          for i in range(count)]


def proxy_metric_correlation(task: str, clip: str, segment_index: int = 0, *,
                             resolutions: Sequence[float] = RESOLUTIONS, qps: Sequence[int] = QPS,
                             preset: str = "veryfast", progress: bool = False) -> dict:
  """Spearman(proxy, metric) for one task on one segment over resolution x QP.

  Returns the task's proxy's `spearman`, its `proxy` and the `metric` values per setting, and
  `alternatives`: the Spearman of each of the task's other proxies on the same outputs.
  """
  spec = TASKS[task]
  model = models.load(spec.model)
  run = jax.jit(lambda x: model(x))
  segment = data.clip_segments(clip)[segment_index]

  reference = per_frame(spec, model, run(jnp.asarray(segment.as_float())), segment.size)
  candidates = {None: spec.proxy, **spec.alternatives}  # None: the task's own proxy
  values = {name: [] for name in candidates}
  metric_values = []
  grid = [(r, q) for r in resolutions for q in qps]
  for resolution, qp in tqdm(grid, desc=f"{task} {clip}", disable=not progress):
    encoded = codec.encode(segment.frames, resolution=resolution, qp=qp, preset=preset)
    outputs = run(jnp.asarray(encoded.as_float()))
    for name, proxy in candidates.items():
      values[name].append(float(proxy(outputs)))
    metric_values.append(metrics.segment_mean(
        spec.metric, per_frame(spec, model, outputs, segment.size), reference))
  spearman = {name: float(spearmanr(v, metric_values).statistic) for name, v in values.items()}
  return {"task": task, "clip": clip, "segment": segment_index,
          "spearman": spearman.pop(None), "proxy": values[None], "metric": metric_values,
          "alternatives": spearman}


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
