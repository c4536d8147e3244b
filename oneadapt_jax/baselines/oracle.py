"""The best grid configuration of every segment by exhaustive search: an upper bound, not a
method; its profiling is every other grid configuration on every segment."""

from __future__ import annotations

from oneadapt_jax.baselines._common import choose
from oneadapt_jax.core import CostModel, Record, Tradeoff, Workload


def oracle(workload: Workload, tradeoff: Tradeoff, *,
           cost: CostModel | None = None) -> list[Record]:
  """The grid configuration that suits `tradeoff` best on each segment, known in hindsight."""
  del cost  # known in hindsight: no delay
  configs = workload.grid()
  records = []
  for i in range(workload.num_segments):
    chosen = choose(workload, tradeoff, configs, [i])
    records.append(Record("oracle", i, chosen, *workload.evaluate(i, chosen),
                          profiling_frames=workload.frames_per_segment * (len(configs) - 1)))
  return records
