"""Reducto (Li et al., SIGCOMM'20): camera-side frame filtering on the changed-pixel fraction at
the best-quality configuration; the server profiles the thresholds on the first segments and
keeps the largest (fewest frames) whose accuracy meets `target`. Needs a sender with a
`"frame_filter"` knob (`Workload.extra_knobs`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oneadapt_jax.core import Record, Tradeoff, Workload

KNOB = "frame_filter"


def reducto(workload: Workload, tradeoff: Tradeoff | None, *, target: float = 0.9,
            profile_segments: int = 1, thresholds: Sequence[float] | None = None) -> list[Record]:
  """Frame filtering at the best quality, the threshold profiled to meet `target`
  (`thresholds`: default the frame filter's ladder, cheapest first)."""
  del tradeoff  # Reducto states its goal as an accuracy target
  if thresholds is None:
    thresholds = workload.extra_knobs[KNOB].values
  profiled = range(min(profile_segments, workload.num_segments))
  options = [{**workload.best, KNOB: float(t)} for t in thresholds]

  def accuracy(config):
    return float(np.mean([workload.evaluate(i, config).accuracy for i in profiled]))

  meeting = [c for c in options if accuracy(c) >= target]
  # Thresholds are cheapest first: the first that meets the target sends the fewest frames.
  chosen = meeting[0] if meeting else options[-1]
  # At a fixed encoding a filtered frame reuses an earlier frame's output, so one inference pass
  # over a profiled segment scores every threshold.
  return [Record("reducto", i, chosen, *workload.evaluate(i, chosen),
                 profiling_frames=workload.frames_per_segment if i in profiled else 0)
          for i in range(workload.num_segments)]
