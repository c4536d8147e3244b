"""Reducto (Li et al., SIGCOMM'20): camera-side frame filtering, its threshold looked up per
segment from what the server profiled, to meet an accuracy target.

- **Bootstrap** (the warm-up segments): sent unfiltered at the best quality. The server runs the
  model on every frame anyway, and at a fixed encoding a filtered frame reuses the output of the
  last frame sent, so that one pass scores every threshold of every difference feature (pixel,
  area, edge; `oneadapt_jax.workloads.video.FILTER_FEATURES`). For each segment and feature the
  label is the largest threshold whose accuracy meets the target.
- **Feature**: the one that filters the most frames at its labels over the bootstrap.
- **Threshold table**: each profiled segment's normalised histogram of its frame-to-frame
  feature values (computed on the camera) and its label. A new segment takes the majority label
  of its `neighbours` nearest histograms (ties: the smaller threshold, which sends more). A
  segment farther from every histogram than the bootstrap's own spread (`novelty`) is new
  content: sent unfiltered, profiled and added to the table.

Candidate thresholds are quantiles of the bootstrap's feature values (and 0). Profiling scores
each threshold with the real sender's filtered encode, a little more exact than Reducto's reuse
of the unfiltered outputs; it is charged as Reducto's one pass (no frames beyond the segment's
own inference). Needs a workload with a `"frame_filter"` knob, `filter_feature_names` and
`filter_features` (the video workload has them).
"""

from __future__ import annotations

import numpy as np

from oneadapt_jax.baselines._common import warmup
from oneadapt_jax.core import CostModel, Record, Tradeoff, Workload

KNOB = "frame_filter"


def candidates(values: np.ndarray, count: int = 8) -> tuple[float, ...]:
  """Thresholds to profile: 0 and `count - 1` quantiles of the observed feature values."""
  quantiles = np.quantile(values, np.linspace(0.3, 1.0, count - 1)) if values.size else []
  return tuple(sorted({0.0, *(float(np.round(q, 5)) for q in quantiles)}, reverse=True))


def histogram(values: np.ndarray, top: float, bins: int) -> np.ndarray:
  """A segment's feature values as a normalised histogram over `[0, top]` (larger values in the
  last bin)."""
  counts, _ = np.histogram(np.minimum(values, top), bins=bins, range=(0.0, max(top, 1e-9)))
  return counts / max(values.size, 1)


def filtered(workload: Workload, threshold: float, feature: int) -> dict:
  """The best-quality configuration filtered at `threshold` on difference feature `feature` (an
  index into the workload's `filter_feature_names`)."""
  return {**workload.best, KNOB: threshold, "filter_feature": float(feature)}


def label(workload: Workload, segment: int, feature: int, thresholds, target: float) -> float:
  """The largest threshold whose accuracy on `segment` meets `target` (0 when none does)."""
  for threshold in thresholds:  # largest first
    if workload.evaluate(segment, filtered(workload, threshold, feature)).accuracy >= target:
      return threshold
  return 0.0


def reducto(workload: Workload, tradeoff: Tradeoff | None, *, cost: CostModel | None = None,
            target: float = 0.9, neighbours: int = 5, bins: int = 10,
            novelty: float | None = None) -> list[Record]:
  """Reducto at an accuracy target (`tradeoff.target`, else `target`); see the module."""
  del cost  # Reducto's profiling is the inference of the segments it sends unfiltered
  if tradeoff is not None and tradeoff.target is not None:
    target = tradeoff.target
  boot = warmup(workload)
  features = tuple(workload.filter_feature_names)
  values = {f: [workload.filter_features(i, f) for i in boot] for f in features}
  thresholds = {f: candidates(np.concatenate(values[f])) for f in features}
  labels = {f: [label(workload, i, k, thresholds[f], target) for i in boot]
            for k, f in enumerate(features)}

  def dropped(f):  # mean fraction of frames dropped at the labels over the bootstrap
    k = features.index(f)
    return np.mean([1 - workload.evaluate(i, filtered(workload, t, k)).frames_sent
                    / workload.frames_per_segment for i, t in zip(boot, labels[f])])

  feature = max(features, key=dropped)  # the first of equals: the first named (pixel)
  index = features.index(feature)
  top = float(np.max(np.concatenate(values[feature]), initial=0.0))
  table = [histogram(v, top, bins) for v in values[feature]]
  table_labels = list(labels[feature])
  if novelty is None:  # the bootstrap's own spread: each histogram to its nearest other
    spread = [min((np.linalg.norm(a - b) for j, b in enumerate(table) if j != k), default=np.inf)
              for k, a in enumerate(table)]
    novelty = float(max(spread))
  records = []
  for i in range(workload.num_segments):
    if i in boot:
      config = dict(workload.best)
    else:
      h = histogram(workload.filter_features(i, feature), top, bins)
      distances = np.array([np.linalg.norm(h - t) for t in table])
      if distances.min() > novelty:  # new content: unfiltered, profiled, remembered
        config = dict(workload.best)
        table.append(h)
        table_labels.append(label(workload, i, index, thresholds[feature], target))
      else:
        nearest = np.argsort(distances, kind="stable")[:neighbours]
        votes = [table_labels[k] for k in nearest]
        threshold = min(set(votes), key=lambda t: (-votes.count(t), t))
        config = filtered(workload, threshold, index)
    records.append(Record("reducto", i, config, *workload.evaluate(i, config)))
  return records
