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
  """A model, the proxy the controller ascends, how to post-process, the metric, other proxies
  the check reports alongside (and `oneadapt run --proxy` selects), and for detectors
  `candidates`: `(model, outputs, frame_size, min_score) -> Detections` of one frame above a
  score floor (what DDS asks again about)."""

  model: str
  proxy: Callable
  post: Callable
  metric: Callable
  alternatives: dict = dataclasses.field(default_factory=dict)
  candidates: Callable | None = None


TASKS = {
    "detection": Task("blazeface", proxies.detection,
                      lambda m, o, size: models.postprocess("blazeface", m, o, size).boxes,
                      metrics.detection, {"expected_f1": proxies.expected_f1},
                      lambda m, o, size, floor: models.blazeface_detections(
                          m, o, size, min_score=floor)),
    "segmentation": Task("selfie_segmentation", proxies.segmentation,
                         lambda m, o, size: np.asarray(o["mask"]) > 0.5, metrics.segmentation),
    "keypoints": Task("face_landmark", proxies.keypoints,
                      lambda m, o, size: np.asarray(o["landmarks"])[:, :2], metrics.keypoints),
}


#: Tasks run by another model than the task's own: `MODEL_TASKS[model]`.
MODEL_TASKS = {
    name: Task(name, proxies.soft_count,
               lambda m, o, size, name=name: models.postprocess(name, m, o, size).boxes,
               metrics.detection,
               {"expected_f1": proxies.expected_f1, "anchor_count": proxies.detection,
                "gentle_count": proxies.gentle_count},
               lambda m, o, size, floor: models.pedestrian_detections(o, size, min_score=floor))
    for name in ("pedestrian_ssdlite", "pedestrian_ssdlite_whole")
} | {
    "blazepose": Task("blazepose", proxies.body_presence,
                      lambda m, o, size: models.postprocess("blazepose", m, o, size),
                      metrics.body_keypoints, {"log_presence": proxies.body_log_presence}),
}
#: The other models each task can run.
TASK_MODELS = {"detection": ("pedestrian_ssdlite", "pedestrian_ssdlite_whole"),
               "segmentation": (), "keypoints": ("blazepose",)}
#: The model a task runs on a clip by default where it is not the task's own (people, not faces,
#: on the surveillance clip).
CLIP_MODELS = {"vtest": {"detection": "pedestrian_ssdlite", "keypoints": "blazepose"}}


def task_spec(task: str, model: str | None = None) -> Task:
  """The task's spec with `model` (`None`: the task's own)."""
  if model is None or model == TASKS[task].model:
    return TASKS[task]
  spec = MODEL_TASKS.get(model)
  if spec is None or model not in TASK_MODELS[task]:
    options = [TASKS[task].model, *TASK_MODELS[task]]
    raise ValueError(f"task {task!r} cannot run model {model!r}; it runs {options}")
  return spec


def default_model(task: str, source: str) -> str:
  """The model `task` runs on `source` unless told otherwise."""
  clip = source.removeprefix("tfds:")
  return CLIP_MODELS.get(clip, {}).get(task, TASKS[task].model)


def per_frame(task: Task, model, outputs: dict, frame_size: tuple[int, int]) -> list:
  """Post-processes a segment's outputs (leading axis = frames) frame by frame."""
  outputs = jax.tree.map(np.asarray, outputs)  # one transfer; indexing a jax.Array dispatches
  count = jax.tree.leaves(outputs)[0].shape[0]
  return [task.post(model, jax.tree.map(lambda a: a[i], outputs), frame_size)
          for i in range(count)]
