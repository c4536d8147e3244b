"""The baselines OneAdapt is measured against, each charged its real costs.

Every method takes a `Workload` and a `Tradeoff` and returns one `Record` per segment: the
configuration sent, its real accuracy and x264 bytes, the DNN frames it ran, and the inference
it spent profiling configurations it did not send (`profiling_frames`). Profiling reuses the
workload's memoised evaluations, so a sweep is computed once however many methods ask.

- `static`: one configuration held throughout (`adapt.run` holds every configuration of the
  workload's `grid()`).
- `awstream` (Zhang et al., SIGCOMM'18): profiles the joint grid offline on the first segments,
  keeps the accuracy/bytes Pareto frontier and holds the frontier point that suits the trade-off.
- `chameleon` (Jiang et al., SIGCOMM'18): a knob at a time (knob independence), the others
  held, re-profiled every `period` segments on the segment at hand; as in OneAdapt's
  re-implementation, a new choice takes effect only after the profiling delay
  `ceil(profiled frames / spare_gpu_fps)` seconds.
- `reducto` (Li et al., SIGCOMM'20): camera-side frame filtering on the changed-pixel fraction at
  the best-quality encoding; the server profiles the thresholds on the first segments and keeps
  the largest (fewest frames) whose accuracy meets `target`.
- `oracle`: the best grid configuration of every segment by exhaustive search; an upper bound,
  not a method.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

import knobs
from oneadapt_jax.workload import Config, Record, Tradeoff, Workload


def _choose(workload: Workload, tradeoff: Tradeoff, configs: Sequence[Config],
            segments: Sequence[int]) -> Config:
  """The configuration whose mean accuracy and bytes over `segments` suit `tradeoff` best."""
  best_bytes = float(np.mean([workload.best_bytes(i) for i in segments]))

  def key(config):
    outcomes = [workload.evaluate(i, config) for i in segments]
    accuracy = float(np.mean([o.accuracy for o in outcomes]))
    num_bytes = float(np.mean([o.bytes for o in outcomes]))
    return tradeoff.score(accuracy, num_bytes, best_bytes, workload.seconds_per_segment)

  return max(configs, key=key)


def static(workload: Workload, config: Config, tradeoff: Tradeoff | None = None) -> list[Record]:
  del tradeoff  # a static configuration ignores it
  return [workload.record("static", i, config, workload.evaluate(i, config))
          for i in range(len(workload.segments))]


def oracle(workload: Workload, tradeoff: Tradeoff) -> list[Record]:
  configs = workload.grid()
  records = []
  for i in range(len(workload.segments)):
    chosen = _choose(workload, tradeoff, configs, [i])
    records.append(workload.record("oracle", i, chosen, workload.evaluate(i, chosen),
                                   profiling_frames=workload.frames_per_segment * (len(configs) - 1)))
  return records


def pareto(points: Sequence[tuple]) -> list:
  """Points `(accuracy, bytes, ...)` not beaten on both accuracy and bytes."""
  return [p for p in points
          if not any(o[0] >= p[0] and o[1] <= p[1] and (o[0] > p[0] or o[1] < p[1]) for o in points)]


def awstream(workload: Workload, tradeoff: Tradeoff, *, profile_segments: int = 1) -> list[Record]:
  configs = workload.grid()
  profiled = range(min(profile_segments, len(workload.segments)))
  points = []
  for config in configs:
    outcomes = [workload.evaluate(i, config) for i in profiled]
    points.append((np.mean([o.accuracy for o in outcomes]), np.mean([o.bytes for o in outcomes]),
                   config))
  frontier = [p[2] for p in pareto(points)]
  chosen = _choose(workload, tradeoff, frontier, profiled)
  return [workload.record("awstream", i, chosen, workload.evaluate(i, chosen),
                          profiling_frames=workload.frames_per_segment * len(configs)
                          if i in profiled else 0)
          for i in range(len(workload.segments))]


def _one_knob_at_a_time(workload: Workload, tradeoff: Tradeoff, start: Config, segment: int,
                        configs: Sequence[Config]) -> tuple[Config, int]:
  """Chameleon's knob-independent search from `start`: each knob in turn over its grid values,
  the others held at their current choice. Returns the choice and the configurations profiled."""
  current, profiled = start, {start}
  for field in workload.knob_fields:
    candidates = sorted({getattr(c, field) for c in configs})
    options = [current._replace(**{field: v}) for v in candidates]
    profiled.update(options)
    current = _choose(workload, tradeoff, options, [segment])
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
  current, count = _one_knob_at_a_time(workload, tradeoff, workload.best, 0, configs)
  records, pending = [], None  # pending: (segment it lands on, configuration)
  for i in range(len(workload.segments)):
    if pending is not None and pending[0] <= i:
      current, pending = pending[1], None
    profiling = frames * count if i == 0 else 0
    if i > 0 and i % period == 0 and pending is None:
      choice, profiled = _one_knob_at_a_time(workload, tradeoff, current, i, configs)
      profiling = frames * profiled
      delay = math.ceil(profiling / spare_gpu_fps / workload.seconds_per_segment)
      pending = (i + max(delay, 1), choice)
    records.append(workload.record("chameleon", i, current, workload.evaluate(i, current),
                                   profiling_frames=profiling))
  return records


def reducto(workload: Workload, tradeoff: Tradeoff | None = None, *, target: float = 0.9,
            profile_segments: int = 1,
            thresholds: Sequence[float] = tuple(knobs.frame_filter().values)) -> list[Record]:
  """Frame filtering at the best-quality encoding, threshold profiled to meet `target`."""
  del tradeoff  # Reducto states its goal as an accuracy target
  profiled = range(min(profile_segments, len(workload.segments)))
  options = [workload.best._replace(threshold=float(t)) for t in thresholds]

  def accuracy(config):
    return float(np.mean([workload.evaluate(i, config).accuracy for i in profiled]))

  meeting = [c for c in options if accuracy(c) >= target]
  # Thresholds are cheapest first: the first that meets the target sends the fewest frames.
  chosen = meeting[0] if meeting else options[-1]
  # At a fixed encoding a filtered frame reuses an earlier frame's output, so one inference pass
  # over a profiled segment scores every threshold.
  return [workload.record("reducto", i, chosen, workload.evaluate(i, chosen),
                          profiling_frames=workload.frames_per_segment if i in profiled else 0)
          for i in range(len(workload.segments))]
