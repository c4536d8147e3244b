"""AWStream (Zhang et al., SIGCOMM'18): an offline profile of the whole grid, its accuracy/bytes
Pareto frontier, and online profiling that keeps the frontier honest.

- Offline, on the warm-up segments: every grid configuration, the Pareto frontier of their mean
  accuracy and bytes, and the frontier point that suits the trade-off.
- Online, back to back on the server's spare GPU: the frontier points near the current choice
  (`neighbours` on each side, by bytes) are re-profiled on the segment at hand; their entries are
  replaced by what was measured and the choice re-made on the updated frontier. When any of them
  drifted from its profile by more than `accuracy_drift` in accuracy (AWStream's rule: 10%) or
  `bytes_drift` in relative bytes, the next profile is the whole grid, which replaces the
  profile.
- Every profile's result applies `CostModel.delay(profiled frames)` segments after it started;
  its inference is charged as profiling on the segment it started on.

Profiling here reads the true accuracy of each configuration on the segment (the real sender and
model); the extra upload a real camera needs for the server to profile is not charged, as in
OneAdapt's own re-implementation. Both favour the baseline.
"""

from __future__ import annotations

import numpy as np

from oneadapt_jax.baselines._common import best_of, pareto, profile, warmup
from oneadapt_jax.core import Config, CostModel, Record, Tradeoff, Workload, config_key


def frontier(table: dict) -> list[Config]:
  """The Pareto frontier of a profile, cheapest first."""
  points = [(acc, num_bytes, config) for config, acc, num_bytes in table.values()]
  return [p[2] for p in sorted(pareto(points), key=lambda p: p[1])]


def near(points: list[Config], current: Config, neighbours: int) -> list[Config]:
  """`current` and up to `neighbours` frontier points on each side of it (by bytes)."""
  keys = [config_key(p) for p in points]
  at = keys.index(config_key(current)) if config_key(current) in keys else 0
  chosen = points[max(0, at - neighbours):at + neighbours + 1]
  return chosen if config_key(current) in keys else [current, *chosen]


def awstream(workload: Workload, tradeoff: Tradeoff, *, cost: CostModel | None = None,
             neighbours: int = 2, accuracy_drift: float = 0.1, bytes_drift: float = 0.5
             ) -> list[Record]:
  """AWStream's offline profile and online re-profiling (see the module)."""
  cost = cost or CostModel()
  configs = workload.grid()
  frames, seconds = workload.frames_per_segment, workload.seconds_per_segment
  offline = warmup(workload)
  table = profile(workload, configs, offline)
  best_bytes = float(np.mean([workload.best_bytes(i) for i in offline]))
  current = best_of({config_key(c): table[config_key(c)] for c in frontier(table)}, tradeoff,
                    best_bytes, seconds)
  records, pending, full_next = [], None, False
  for i in range(workload.num_segments):
    profiling = frames * len(configs) if i in offline else 0
    if pending is not None and pending["lands"] <= i:
      if pending["full"]:
        table = pending["table"]
      else:
        full_next = any(abs(acc - table[key][1]) > accuracy_drift
                        or abs(np.log(max(num_bytes, 1.0) / max(table[key][2], 1.0)))
                        > np.log1p(bytes_drift)
                        for key, (_, acc, num_bytes) in pending["table"].items())
        table = {**table, **pending["table"]}
      current = best_of({config_key(c): table[config_key(c)] for c in frontier(table)},
                        tradeoff, pending["best_bytes"], seconds)
      pending = None
    if pending is None and i >= offline.stop:  # the spare GPU is never idle
      profiled = configs if full_next else near(frontier(table), current, neighbours)
      pending = {"table": profile(workload, profiled, [i]), "full": full_next,
                 "best_bytes": float(workload.best_bytes(i)),
                 "lands": i + cost.delay(frames * len(profiled), seconds)}
      profiling += frames * len(profiled)
      full_next = False
    records.append(Record("awstream", i, dict(current), *workload.evaluate(i, current),
                          profiling_frames=profiling))
  return records
