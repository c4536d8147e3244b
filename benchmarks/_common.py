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
  """The median of `repeats` calls of `fn` after a warm-up (`interleaved_times` of one)."""
  return statistics.median(interleaved_times({"fn": fn}, repeats)["fn"])


def interleaved_times(fns: dict, repeats: int) -> dict[str, list[float]]:
  """Each of `fns` (name -> callable) timed `repeats` times after a warm-up, one call of each in
  turn per repeat: the times of one repeat are taken within seconds of each other, so a ratio
  of two of them sees the machine in the same state (its speed drifts 20% and more within an
  hour, benchmarks/RESULTS.md). Returns each name's times in repeat order."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return times
