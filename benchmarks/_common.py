"""What every benchmark shares: the machine's description and a median timer."""

from __future__ import annotations

import os
import platform
import statistics
import time

import jax


def machine() -> str:
  device = jax.devices()[0]
  return (f"{platform.processor() or platform.machine()}, {jax.device_count()} x "
          f"{device.device_kind} ({device.platform}), jax {jax.__version__}, "
          f"{os.cpu_count()} CPU cores")


def median_time(fn, repeats: int) -> float:
  jax.block_until_ready(fn())  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)
