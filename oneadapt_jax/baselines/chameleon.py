"""Chameleon (Jiang et al., SIGCOMM'18), as OneAdapt's authors re-implemented it: profiling back
to back on the server's spare GPU, one knob at a time, with temporal incrementality.

- A *leader* profile searches one knob at a time from the current choice (knob independence:
  each knob in turn over its grid values, the others held) on the segment at hand, and keeps the
  `top_k` configurations it profiled that suit the trade-off best.
- The next `followers` profiles re-profile only those top-k configurations (temporal
  incrementality) on the segment at hand; then a leader again.
- A profile starts when the last one landed; its result applies `CostModel.delay(profiled
  frames)` segments after it started, and its inference is charged as profiling on the segment
  it started on. The first profile starts on segment 0 from the best-quality configuration, so
  the warm-up is used like any other time.

Profiling reads each configuration's true accuracy on the segment and its upload is not charged,
as in OneAdapt's re-implementation; both favour the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from oneadapt_jax.baselines._common import best_of, profile, ranked
from oneadapt_jax.core import Config, CostModel, Record, Tradeoff, Workload, config_key


def one_knob_at_a_time(workload: Workload, tradeoff: Tradeoff, start: Config, segment: int,
                       configs: Sequence[Config], *, top_k: int = 1
                       ) -> tuple[Config, int, list[Config]]:
  """Chameleon's knob-independent search from `start`: each knob in turn (in the grid's key
  order) over its grid values, the others held at their current choice. Returns the choice,
  the number of configurations profiled, and the `top_k` profiled ones that suit `tradeoff`
  best (the choice first)."""
  best_bytes, seconds = float(workload.best_bytes(segment)), workload.seconds_per_segment
  current, seen = dict(start), {}
  for name in configs[0]:
    profiled = profile(workload, [{**current, name: v} for v in sorted({c[name] for c in configs})],
                       [segment])
    seen.update(profiled)
    current = best_of(profiled, tradeoff, best_bytes, seconds)
  top = [current] + [c for c in ranked(seen, tradeoff, best_bytes, seconds)
                     if config_key(c) != config_key(current)]
  return current, len(seen), top[:top_k]


def chameleon(workload: Workload, tradeoff: Tradeoff, *, cost: CostModel | None = None,
              top_k: int = 5, followers: int = 3) -> list[Record]:
  """Chameleon's back-to-back, knob-at-a-time profiling with top-k followers (see the module)."""
  cost = cost or CostModel()
  configs = workload.grid()
  frames, seconds = workload.frames_per_segment, workload.seconds_per_segment
  current, top, since_leader = workload.best, [], followers
  records, pending = [], None  # pending: (segment it lands on, choice, top-k)
  for i in range(workload.num_segments):
    profiling = 0
    if pending is not None and pending[0] <= i:
      _, current, top = pending
      pending = None
    if pending is None:
      if since_leader >= followers or not top:
        choice, count, leaders = one_knob_at_a_time(workload, tradeoff, current, i, configs,
                                                    top_k=top_k)
        since_leader = 0
      else:
        leaders = ranked(profile(workload, top, [i]), tradeoff, float(workload.best_bytes(i)),
                         seconds)
        choice, count = leaders[0], len(top)
        since_leader += 1
      profiling = frames * count
      pending = (i + cost.delay(profiling, seconds), choice, leaders)
    records.append(Record("chameleon", i, dict(current), *workload.evaluate(i, current),
                          profiling_frames=profiling))
  return records


__all__ = ("chameleon", "one_knob_at_a_time")
