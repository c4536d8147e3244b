"""LiDAR: ground classification on autzen tiles, sent as LAZ."""

from oneadapt_jax.workloads.lidar._workload import GroundMap as GroundMap
from oneadapt_jax.workloads.lidar._workload import LidarWorkload as LidarWorkload
from oneadapt_jax.workloads.lidar._workload import build as build
from oneadapt_jax.workloads.lidar._workload import knob_chain as knob_chain
from oneadapt_jax.workloads.lidar._workload import load_model as load_model
from oneadapt_jax.workloads.lidar._workload import send as send

__all__ = ("GroundMap", "LidarWorkload", "build", "knob_chain", "load_model", "send")
