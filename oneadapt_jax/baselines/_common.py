"""What the profiling baselines share: profiles of configurations, and choosing from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from oneadapt_jax.core import Config, Tradeoff, Workload, config_key

#: config_key -> (configuration, mean accuracy, mean bytes) as profiled.
Profile = dict


def profile(workload: Workload, configs: Sequence[Config], segments: Sequence[int]) -> Profile:
  """Every configuration's mean accuracy and bytes over `segments` (the workload's real sender
  and model)."""
  table = {}
  for config in configs:
    outcomes = [workload.evaluate(i, config) for i in segments]
    table[config_key(config)] = (dict(config), float(np.mean([o.accuracy for o in outcomes])),
                                 float(np.mean([o.bytes for o in outcomes])))
  return table


def ranked(table: Mapping, tradeoff: Tradeoff, best_bytes: float, seconds: float) -> list[Config]:
  """The profiled configurations, the one that suits `tradeoff` best first (equals in the
  profile's order)."""
  entries = sorted(table.values(), reverse=True,
                   key=lambda e: tradeoff.score(e[1], e[2], best_bytes, seconds))
  return [e[0] for e in entries]


def best_of(table: Mapping, tradeoff: Tradeoff, best_bytes: float, seconds: float) -> Config:
  """The profiled configuration that suits `tradeoff` best (the first of equals)."""
  return ranked(table, tradeoff, best_bytes, seconds)[0]


def choose(workload: Workload, tradeoff: Tradeoff, configs: Sequence[Config],
           segments: Sequence[int]) -> Config:
  """The configuration whose mean accuracy and bytes over `segments` suit `tradeoff` best (the
  first of equals, in the order given)."""
  best_bytes = float(np.mean([workload.best_bytes(i) for i in segments]))
  return best_of(profile(workload, configs, segments), tradeoff, best_bytes,
                 workload.seconds_per_segment)


def pareto(points: Sequence[tuple]) -> list:
  """Points `(accuracy, bytes, ...)` not beaten on both accuracy and bytes."""
  return [p for p in points
          if not any(o[0] >= p[0] and o[1] <= p[1] and (o[0] > p[0] or o[1] < p[1]) for o in points)]


def warmup(workload: Workload) -> range:
  """The segments a baseline may profile before it is scored: the warm-up, or the first
  segment when the workload has none."""
  return range(min(max(workload.warmup_segments, 1), workload.num_segments))
