"""Video: detection, segmentation and keypoints on real clips, sent for real with x264."""

from oneadapt_jax.workloads.video._tasks import CLIP_MODELS as CLIP_MODELS
from oneadapt_jax.workloads.video._tasks import MODEL_TASKS as MODEL_TASKS
from oneadapt_jax.workloads.video._tasks import TASKS as TASKS
from oneadapt_jax.workloads.video._tasks import Task as Task
from oneadapt_jax.workloads.video._tasks import default_model as default_model
from oneadapt_jax.workloads.video._tasks import per_frame as per_frame
from oneadapt_jax.workloads.video._tasks import task_spec as task_spec
from oneadapt_jax.workloads.video._workload import CHAINS as CHAINS
from oneadapt_jax.workloads.video._workload import FILTER_FEATURES as FILTER_FEATURES
from oneadapt_jax.workloads.video._workload import ROI_QPS as ROI_QPS
from oneadapt_jax.workloads.video._workload import VideoWorkload as VideoWorkload
from oneadapt_jax.workloads.video._workload import build as build
from oneadapt_jax.workloads.video._workload import knob_chain as knob_chain

__all__ = ("CHAINS", "CLIP_MODELS", "FILTER_FEATURES", "MODEL_TASKS", "ROI_QPS", "TASKS", "Task",
           "VideoWorkload", "build", "default_model", "knob_chain", "per_frame", "task_spec")
