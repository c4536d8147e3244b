"""Video: detection, segmentation and keypoints on real clips, sent for real with x264."""

from oneadapt_jax.workloads.video._tasks import TASKS as TASKS
from oneadapt_jax.workloads.video._tasks import Task as Task
from oneadapt_jax.workloads.video._tasks import per_frame as per_frame
from oneadapt_jax.workloads.video._workload import VideoWorkload as VideoWorkload
from oneadapt_jax.workloads.video._workload import build as build
from oneadapt_jax.workloads.video._workload import knob_chain as knob_chain

__all__ = ("TASKS", "Task", "VideoWorkload", "build", "knob_chain", "per_frame")
