"""One configuration held throughout (the experiment driver holds every grid configuration)."""

from __future__ import annotations

from oneadapt_jax.core import Config, Record, Workload


def static(workload: Workload, config: Config) -> list[Record]:
  """`config` on every segment, with no profiling."""
  return [Record("static", i, dict(config), *workload.evaluate(i, config))
          for i in range(workload.num_segments)]
