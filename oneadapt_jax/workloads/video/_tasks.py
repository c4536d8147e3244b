"""The video tasks: a pretrained model, the proxy OneAdapt ascends, post-processing and metric.

Each proxy's agreement with its metric is measured by `oneadapt proxy-check`
(`oneadapt_jax.proxy_check`, whose docstring tabulates it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

import models
from oneadapt_jax import metrics, proxies


@dataclasses.dataclass(frozen=True)
class Task:
  """A model, the proxy the controller ascends, how to post-process, the metric, and other
  proxies the check reports alongside (and `oneadapt run --proxy` selects)."""

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


def per_frame(task: Task, model, outputs: dict, frame_size: tuple[int, int]) -> list:
  """Post-processes a segment's outputs (leading axis = frames) frame by frame."""
  count = jax.tree.leaves(outputs)[0].shape[0]
  return [task.post(model, jax.tree.map(lambda a: np.asarray(a[i]), outputs), frame_size)
          for i in range(count)]
