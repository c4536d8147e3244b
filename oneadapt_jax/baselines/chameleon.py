"""Chameleon (Jiang et al., SIGCOMM'18): a knob at a time (knob independence), the others held,
re-profiled every `period` segments on the segment at hand; as in OneAdapt's re-implementation, a
new choice takes effect only after the profiling delay `ceil(profiled frames / spare_gpu_fps)`
seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from oneadapt_jax.baselines._common import choose
from oneadapt_jax.core import Config, Record, Tradeoff, Workload, config_key


def one_knob_at_a_time(workload: Workload, tradeoff: Tradeoff, start: Config, segment: int,
                       configs: Sequence[Config]) -> tuple[Config, int]:
  """Chameleon's knob-independent search from `start`: each knob in turn (in the grid's key
  order) over its grid values, the others held at their current choice. Returns the choice and
  the number of configurations profiled."""
  current, profiled = dict(start), {config_key(start)}
  for name in configs[0]:
    candidates = sorted({c[name] for c in configs})
    options = [{**current, name: v} for v in candidates]
    profiled.update(config_key(o) for o in options)
    current = choose(workload, tradeoff, options, [segment])
  return current, len(profiled)


def chameleon(workload: Workload, tradeoff: Tradeoff, *, period: int = 4,
              spare_gpu_fps: float = 5.0) -> list[Record]:
  """Knob-independent periodic re-profiling with a profiling delay.

  Segment 0 is profiled offline (as AWStream's profile is) and its choice holds from the start;
  from then on, every `period` segments the segment at hand is re-profiled from the current
  choice, and the result takes effect `ceil(profiled frames / spare_gpu_fps)` seconds later
  (5 frames/s of spare GPU, as in OneAdapt's code). A new profile starts only when the last has
  landed.
  """
  configs = workload.grid()
  frames = workload.frames_per_segment
  current, count = one_knob_at_a_time(workload, tradeoff, workload.best, 0, configs)
  records, pending = [], None  # pending: (segment it lands on, configuration)
  for i in range(workload.num_segments):
    if pending is not None and pending[0] <= i:
      current, pending = pending[1], None
    profiling = frames * count if i == 0 else 0
    if i > 0 and i % period == 0 and pending is None:
      choice, profiled = one_knob_at_a_time(workload, tradeoff, current, i, configs)
      profiling = frames * profiled
      delay = math.ceil(profiling / spare_gpu_fps / workload.seconds_per_segment)
      pending = (i + max(delay, 1), choice)
    records.append(Record("chameleon", i, current, *workload.evaluate(i, current),
                          profiling_frames=profiling))
  return records
