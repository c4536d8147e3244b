"""DDS (Du et al., SIGCOMM'20): server-driven two-pass streaming, at macroblock granularity.

Each segment is sent at a low quality first; the server runs the detector on it and asks the
camera again, at the high quality, about the regions it is unsure of (candidates scoring
between DDS's low and high thresholds), sent as their macroblocks with the rest of the frame
black; it runs the detector again on the frames it asked about, with the regions pasted in
(`oneadapt_jax.workloads.video._regions` has the rule; the video workload's `roi` chain sends
it for real when a configuration names `requery_qp`). Every segment costs two encodes and up
to two forward passes a frame.

DDS fixes its two qualities for a deployment. Here the low QP is chosen on the warm-up, by the
trade-off, from every rung of the `roi_quality` ladder below the best (each profiled with both
passes, charged as warm-up profiling); the regions are asked again at the best QP. It does not
re-profile: the server's feedback on every segment is its adaptation.
"""

from __future__ import annotations

import numpy as np

from oneadapt_jax.baselines._common import best_of, profile, warmup
from oneadapt_jax.core import CostModel, Record, Tradeoff, Workload

KNOB, REQUERY = "roi_quality", "requery_qp"


def qualities(workload: Workload) -> list[dict]:
  """DDS's candidate configurations: each low QP below the best, the regions at the best."""
  ladder = [float(v) for v in workload.knob.values[KNOB]]
  return [{KNOB: low, REQUERY: ladder[-1]} for low in ladder[:-1]]


def dds(workload: Workload, tradeoff: Tradeoff, *, cost: CostModel | None = None
        ) -> list[Record]:
  """DDS with its low quality chosen on the warm-up (see the module)."""
  del cost  # DDS profiles only on the warm-up, which nothing waits for
  configs = qualities(workload)
  offline = warmup(workload)
  table = profile(workload, configs, offline)
  best_bytes = float(np.mean([workload.best_bytes(i) for i in offline]))
  chosen = best_of(table, tradeoff, best_bytes, workload.seconds_per_segment)
  records = []
  for i in range(workload.num_segments):
    outcome = workload.evaluate(i, chosen)
    profiling = 0
    if i in offline:  # every other candidate's two passes on this segment
      profiling = sum(workload.evaluate(i, c).frames_sent for c in configs) - outcome.frames_sent
    resent = outcome.frames_sent > workload.frames_per_segment  # any region asked again
    records.append(Record("dds", i, dict(chosen), *outcome, profiling_frames=profiling,
                          camera_encodes=1 + resent))
  return records
