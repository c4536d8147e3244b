"""AWStream (Zhang et al., SIGCOMM'18): profiles the joint grid offline on the first segments,
keeps the accuracy/bytes Pareto frontier and holds the frontier point that suits the trade-off."""

from __future__ import annotations

import numpy as np

from oneadapt_jax.baselines._common import choose, pareto
from oneadapt_jax.core import Record, Tradeoff, Workload


def awstream(workload: Workload, tradeoff: Tradeoff, *, profile_segments: int = 1) -> list[Record]:
  """Profiles every grid configuration on the first `profile_segments` segments (charged as
  profiling there) and holds the Pareto point that suits `tradeoff` best."""
  configs = workload.grid()
  profiled = range(min(profile_segments, workload.num_segments))
  points = []
  for config in configs:
    outcomes = [workload.evaluate(i, config) for i in profiled]
    points.append((np.mean([o.accuracy for o in outcomes]), np.mean([o.bytes for o in outcomes]),
                   config))
  frontier = [p[2] for p in pareto(points)]
  chosen = choose(workload, tradeoff, frontier, profiled)
  return [Record("awstream", i, chosen, *workload.evaluate(i, chosen),
                 profiling_frames=workload.frames_per_segment * len(configs)
                 if i in profiled else 0)
          for i in range(workload.num_segments)]
