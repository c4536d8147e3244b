"""Does each accuracy proxy rank settings the way its real metric does?

Over a grid of resolution x QP, each segment is really encoded with x264, the model runs on the
decoded frames, and the proxy (`oneadapt_jax.proxies`) is compared with the metric against the
model's output on the original frames (`oneadapt_jax.metrics`) by Spearman rank correlation.

Measured here (x264 veryfast, 5 resolutions x 5 QPs, one segment each):

| task | clip, segment | chosen proxy | Spearman | other proxies tried |
|---|---|---|---|---|
| detection | carphone 0 | soft count (paper) | 0.867 | decisiveness 0.574, neg. entropy 0.553 |
| detection | bikes 0 | soft count | -0.614 | decisiveness 0.017, confident-minus-ambiguous 0.198 |
| segmentation | carphone 0 | decisiveness | 0.668 | foreground-weighted decisiveness 0.901 (0.584 on segment 2) |
| segmentation | bikes 5 | decisiveness | -0.776 | every variant negative |
| keypoints | carphone 0 | presence | 0.770 | presence logit 0.747 |

Only detection on carphone reaches 0.8. On bikes, compression artefacts raise confident false
anchors around small faces, which the soft count rewards and F1 penalises; confidence alone
does not separate "more sure" from "more wrong" there.
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
  model: str
  proxy: Callable
  post: Callable
  metric: Callable


TASKS = {
    "detection": Task("blazeface", proxies.detection,
                      lambda m, o, size: models.postprocess("blazeface", m, o, size).boxes,
                      metrics.detection),
    "segmentation": Task("selfie_segmentation", proxies.segmentation,
                         lambda m, o, size: np.asarray(o["mask"]) > 0.5, metrics.segmentation),
    "keypoints": Task("face_landmark", proxies.keypoints,
                      lambda m, o, size: np.asarray(o["landmarks"])[:, :2], metrics.keypoints),
}
RESOLUTIONS = (0.25, 1 / 3, 0.5, 0.75, 1.0)


def per_frame(task: Task, model, outputs: dict, frame_size: tuple[int, int]) -> list:
  """Post-processes a segment's outputs (leading axis = frames) frame by frame."""
  count = jax.tree.leaves(outputs)[0].shape[0]
  return [task.post(model, jax.tree.map(lambda a: np.asarray(a[i]), outputs), frame_size)
          for i in range(count)]
QPS = (20, 30, 38, 44, 50)


def proxy_metric_correlation(task: str, clip: str, segment_index: int = 0, *,
                             resolutions: Sequence[float] = RESOLUTIONS, qps: Sequence[int] = QPS,
                             preset: str = "veryfast", progress: bool = False) -> dict:
  """Spearman(proxy, metric) for one task on one segment over resolution x QP."""
  spec = TASKS[task]
  model = models.load(spec.model)
  run = jax.jit(lambda x: model(x))
  segment = data.clip_segments(clip)[segment_index]

  reference = per_frame(spec, model, run(jnp.asarray(segment.as_float())), segment.size)
  proxy_values, metric_values = [], []
  grid = [(r, q) for r in resolutions for q in qps]
  for resolution, qp in tqdm(grid, desc=f"{task} {clip}", disable=not progress):
    encoded = codec.encode(segment.frames, resolution=resolution, qp=qp, preset=preset)
    outputs = run(jnp.asarray(encoded.as_float()))
    proxy_values.append(float(spec.proxy(outputs)))
    metric_values.append(metrics.segment_mean(
        spec.metric, per_frame(spec, model, outputs, segment.size), reference))
  return {"task": task, "clip": clip, "segment": segment_index,
          "spearman": float(spearmanr(proxy_values, metric_values).statistic),
          "proxy": proxy_values, "metric": metric_values}


def main(cases=(("detection", "carphone", 0), ("detection", "bikes", 0),
                ("segmentation", "carphone", 0), ("keypoints", "carphone", 0)),
         progress: bool = True) -> list[dict]:
  results = [proxy_metric_correlation(t, c, i, progress=progress) for t, c, i in cases]
  print(f"{'task':<14}{'clip':<10}{'segment':>8}{'Spearman':>10}{'metric range':>16}")
  for r in results:
    print(f"{r['task']:<14}{r['clip']:<10}{r['segment']:>8}{r['spearman']:>10.3f}"
          f"{min(r['metric']):>8.2f}-{max(r['metric']):.2f}")
  return results
