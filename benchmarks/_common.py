"""What every benchmark shares: the machine's description and a median timer."""

from __future__ import annotations

import os
import platform
import statistics

import jax

# The timer the package's own measurement (`bench.measure_backward_cost`) uses too.
from oneadapt_jax.bench import interleaved_times


def machine() -> str:
  device = jax.devices()[0]
  return (f"{platform.processor() or platform.machine()}, {jax.device_count()} x "
          f"{device.device_kind} ({device.platform}), jax {jax.__version__}, "
          f"{os.cpu_count()} CPU cores")


def median_time(fn, repeats: int) -> float:
  """The median of `repeats` calls of `fn` after a warm-up (`interleaved_times` of one)."""
  return statistics.median(interleaved_times({"fn": fn}, repeats)["fn"])


__all__ = ("interleaved_times", "machine", "median_time")
