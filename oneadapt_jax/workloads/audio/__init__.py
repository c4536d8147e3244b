"""Audio: keyword spotting on espeak-ng speech, sent as PCM."""

from oneadapt_jax.workloads.audio._workload import CHUNKS as CHUNKS
from oneadapt_jax.workloads.audio._workload import AudioWorkload as AudioWorkload
from oneadapt_jax.workloads.audio._workload import build as build
from oneadapt_jax.workloads.audio._workload import knob_chain as knob_chain
from oneadapt_jax.workloads.audio._workload import load_model as load_model
from oneadapt_jax.workloads.audio._workload import send as send

__all__ = ("CHUNKS", "AudioWorkload", "build", "knob_chain", "load_model", "send")
