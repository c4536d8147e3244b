"""Text from speech: a CTC recogniser on espeak-ng command sentences, sent as Opus."""

from oneadapt_jax.workloads.speech._workload import CHUNKS as CHUNKS
from oneadapt_jax.workloads.speech._workload import SEGMENTS as SEGMENTS
from oneadapt_jax.workloads.speech._workload import SpeechWorkload as SpeechWorkload
from oneadapt_jax.workloads.speech._workload import build as build
from oneadapt_jax.workloads.speech._workload import knob_chain as knob_chain
from oneadapt_jax.workloads.speech._workload import load_model as load_model
from oneadapt_jax.workloads.speech._workload import metric as metric
from oneadapt_jax.workloads.speech._workload import packet_chunks as packet_chunks
from oneadapt_jax.workloads.speech._workload import proxy as proxy
from oneadapt_jax.workloads.speech._workload import send as send
from oneadapt_jax.workloads.speech._workload import transcript as transcript
from oneadapt_jax.workloads.speech._workload import truth_metric as truth_metric

__all__ = ("CHUNKS", "SEGMENTS", "SpeechWorkload", "build", "knob_chain", "load_model", "metric",
           "packet_chunks", "proxy", "send", "transcript", "truth_metric")
