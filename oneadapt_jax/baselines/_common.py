"""What the profiling baselines share: choosing a configuration from profiled outcomes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oneadapt_jax.core import Config, Tradeoff, Workload


def choose(workload: Workload, tradeoff: Tradeoff, configs: Sequence[Config],
           segments: Sequence[int]) -> Config:
  """The configuration whose mean accuracy and bytes over `segments` suit `tradeoff` best (the
  first of equals, in the order given)."""
  best_bytes = float(np.mean([workload.best_bytes(i) for i in segments]))

  def key(config):
    outcomes = [workload.evaluate(i, config) for i in segments]
    accuracy = float(np.mean([o.accuracy for o in outcomes]))
    num_bytes = float(np.mean([o.bytes for o in outcomes]))
    return tradeoff.score(accuracy, num_bytes, best_bytes, workload.seconds_per_segment)

  return max(configs, key=key)


def pareto(points: Sequence[tuple]) -> list:
  """Points `(accuracy, bytes, ...)` not beaten on both accuracy and bytes."""
  return [p for p in points
          if not any(o[0] >= p[0] and o[1] <= p[1] and (o[0] > p[0] or o[1] < p[1]) for o in points)]
