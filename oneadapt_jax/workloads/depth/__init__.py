"""Depth video: ground segmentation of a range camera's frames over autzen, sent as FFV1."""

from oneadapt_jax.workloads.depth._workload import DepthWorkload as DepthWorkload
from oneadapt_jax.workloads.depth._workload import GroundSegmenter as GroundSegmenter
from oneadapt_jax.workloads.depth._workload import build as build
from oneadapt_jax.workloads.depth._workload import knob_chain as knob_chain
from oneadapt_jax.workloads.depth._workload import load_model as load_model
from oneadapt_jax.workloads.depth._workload import metric as metric
from oneadapt_jax.workloads.depth._workload import proxy as proxy
from oneadapt_jax.workloads.depth._workload import segments as segments
from oneadapt_jax.workloads.depth._workload import send as send
from oneadapt_jax.workloads.depth._workload import truth_metric as truth_metric

__all__ = ("DepthWorkload", "GroundSegmenter", "build", "knob_chain", "load_model", "metric",
           "proxy", "segments", "send", "truth_metric")
