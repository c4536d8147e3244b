"""Curves against curves: each method's operating points over its own trade-off sweep, and the
comparisons between them, with bootstrap confidence intervals over segments.

A *run* is one method at one trade-off: per scored segment, its accuracy, bytes, the bytes of
the best-quality configuration (the normaliser), frames inferred and GPU work. On a set of
segments a run is one point: mean accuracy, relative bytes `sum(bytes) / sum(best bytes)`,
frames inferred per segment and GPU work per segment (forward-equivalents). A *curve* is a
method's points; its *frontier* keeps the points no other point of the same curve beats.

Comparisons, of one curve (ours) against another (theirs), at each of their points:

- `saving`: `1 - cost_ours(a) / cost_theirs`, our cost (bytes, frames or GPU) interpolated on
  our frontier at their accuracy `a`;
- `gain`: our accuracy interpolated at their cost, minus theirs.

Both are interpolated, never extrapolated: `None` where their point lies outside the accuracy
(or cost) range our frontier spans, so that only the stretch where both curves operate is
compared.

Each is averaged over their points where it is defined; a confidence interval comes from
resampling the scored segments with replacement (the same resample for both curves) and
recomputing everything. Where the curves do not overlap, dominance still reads: how many of
their points one of ours beats (at least as accurate, at most as costly, better in one), and
how many of ours one of theirs beats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from oneadapt_jax.core import CostModel, Record

#: What a curve's cost axis can be: relative bytes, frames inferred per segment, GPU work per
#: segment in forward-equivalents.
AXES = ("bytes", "frames", "gpu")


@dataclasses.dataclass(frozen=True)
class Run:
  """One method at one trade-off, per scored segment.

  Attributes:
    method: the method's name (`"static"` runs are one configuration each).
    label: the trade-off's label, or the static configuration.
    accuracy, bytes, best_bytes, frames, gpu: `float [S]` over the scored segments.
  """

  method: str
  label: str
  accuracy: np.ndarray
  bytes: np.ndarray
  best_bytes: np.ndarray
  frames: np.ndarray
  gpu: np.ndarray

  def point(self, index: np.ndarray | slice = slice(None)) -> dict[str, float]:
    """The run on the segments `index` (a resample): accuracy and each cost axis."""
    return {"accuracy": float(np.mean(self.accuracy[index])),
            "bytes": float(np.sum(self.bytes[index]) / np.sum(self.best_bytes[index])),
            "frames": float(np.mean(self.frames[index])),
            "gpu": float(np.mean(self.gpu[index]))}


def runs_of(results: Mapping, *, gpu_of=None) -> list[Run]:
  """The scored `Run`s of a `results.json` (methods and static configurations).

  `gpu_of(record dict) -> float`: GPU work of a record (default: `CostModel.gpu` of the
  results' `cost_model`)."""
  warmup = results.get("warmup_segments", 0)
  cost = CostModel(**results.get("cost_model", {}))
  gpu_of = gpu_of or (lambda r: cost.gpu(Record.from_json(r)))
  runs = []
  entries = [(e["method"], _label(e), e["per_segment"]) for e in results["runs"]]
  entries += [("static", _config_label(e["config"]), e["per_segment"]) for e in results["static"]]
  best_bytes = results["best_bytes"]
  for method, label, records in entries:
    records = [r for r in records if r["segment"] >= warmup]
    runs.append(Run(method, label,
                    np.array([r["accuracy"] for r in records], np.float64),
                    np.array([r["bytes"] for r in records], np.float64),
                    np.array([best_bytes[str(r["segment"])] for r in records], np.float64),
                    np.array([r["dnn_frames"] for r in records], np.float64),
                    np.array([gpu_of(r) for r in records], np.float64)))
  return runs


def _label(entry: Mapping) -> str:
  for key, name in (("lambda", "lambda"), ("budget", "budget"), ("target", "target")):
    if entry.get(key) is not None:
      return f"{name}={entry[key]:g}"
  return "?"


def _config_label(config: Mapping) -> str:
  return " ".join(f"{k}={v:g}" for k, v in config.items())


def frontier(points: Sequence[tuple[float, float]]) -> np.ndarray:
  """`(accuracy, cost)` points no other point beats (at least as accurate and at most as
  costly, one strictly), sorted by cost: `float [K, 2]`, accuracy rising with cost."""
  pts = np.asarray(points, np.float64).reshape(-1, 2)
  keep = [p for p in pts if not np.any((pts[:, 0] >= p[0]) & (pts[:, 1] <= p[1])
                                       & ((pts[:, 0] > p[0]) | (pts[:, 1] < p[1])))]
  keep = np.unique(np.asarray(keep).reshape(-1, 2), axis=0)
  return keep[np.argsort(keep[:, 1], kind="stable")]


def cost_at(front: np.ndarray, accuracy: float) -> float | None:
  """The cost of reaching `accuracy` on a frontier, interpolated linearly between its points;
  `None` outside the accuracies it spans."""
  if not front[0, 0] - 1e-12 <= accuracy <= front[-1, 0] + 1e-12:
    return None
  return float(np.interp(accuracy, front[:, 0], front[:, 1]))


def accuracy_at(front: np.ndarray, cost: float) -> float | None:
  """The accuracy a frontier reaches at `cost`, interpolated; `None` outside the costs it
  spans."""
  if not front[0, 1] - 1e-12 <= cost <= front[-1, 1] + 1e-12:
    return None
  return float(np.interp(cost, front[:, 1], front[:, 0]))


def compare_points(ours: Sequence[dict], theirs: Sequence[dict], axis: str) -> dict:
  """Our curve against theirs on `axis` at each of their points (see the module): per point
  `saving` and `gain`, and their means over the points where each is defined."""
  front = frontier([(p["accuracy"], p[axis]) for p in ours])
  savings, gains = [], []
  for p in theirs:
    cost = cost_at(front, p["accuracy"])
    savings.append(None if cost is None or p[axis] <= 0 else 1.0 - cost / p[axis])
    accuracy = accuracy_at(front, p[axis])
    gains.append(None if accuracy is None else accuracy - p["accuracy"])
  ours_xy = [(p["accuracy"], p[axis]) for p in ours]
  theirs_xy = [(p["accuracy"], p[axis]) for p in theirs]
  return {"saving": savings, "gain": gains,
          "mean_saving": _mean(savings), "mean_gain": _mean(gains),
          "theirs_beaten": sum(any(_beats(o, t) for o in ours_xy) for t in theirs_xy),
          "ours_beaten": sum(any(_beats(t, o) for t in theirs_xy) for o in ours_xy)}


def _beats(a, b) -> bool:
  """`(accuracy, cost)` point `a` is at least as accurate and at most as costly as `b`, and
  strictly better in one."""
  return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _mean(values):
  defined = [v for v in values if v is not None]
  return float(np.mean(defined)) if defined else None


def compare(ours: Sequence[Run], theirs: Sequence[Run], axis: str, *, resamples: int = 1000,
            seed: int = 0, level: float = 0.95) -> dict:
  """`compare_points` on all scored segments, with percentile confidence intervals from
  `resamples` bootstrap resamples of the segments (paired: both curves see the same resample).

  Returns the comparison's fields plus `mean_saving_ci`, `mean_gain_ci`, `saving_ci` and
  `gain_ci` (per point; `None` where undefined in most resamples) and `points` (their points)."""
  if axis not in AXES:
    raise ValueError(f"unknown cost axis {axis!r}; available: {', '.join(AXES)}")
  sizes = {len(r.accuracy) for r in [*ours, *theirs]}
  if len(sizes) != 1:
    raise ValueError(f"runs cover different numbers of scored segments: {sorted(sizes)}")
  (count,) = sizes
  result = compare_points([r.point() for r in ours], [r.point() for r in theirs], axis)
  rng = np.random.default_rng(seed)
  draws = []
  for _ in range(resamples):
    index = rng.integers(0, count, count)
    draws.append(compare_points([r.point(index) for r in ours], [r.point(index) for r in theirs],
                                axis))
  tail = (1 - level) / 2 * 100
  for key in ("saving", "gain"):  # an interval only where the estimate itself is defined
    result[f"mean_{key}_ci"] = (None if result[f"mean_{key}"] is None else
                                _interval([d[f"mean_{key}"] for d in draws], tail))
    result[f"{key}_ci"] = [None if result[key][k] is None else
                           _interval([d[key][k] for d in draws], tail)
                           for k in range(len(theirs))]
  result["points"] = [{"label": r.label, **r.point()} for r in theirs]
  return result


def point_intervals(run: Run, *, resamples: int = 200, seed: int = 0, level: float = 0.95
                    ) -> dict[str, list[float]]:
  """Bootstrap intervals of a run's point over its scored segments: `{field}_ci` for accuracy
  and each cost axis."""
  rng = np.random.default_rng(seed)
  count = len(run.accuracy)
  draws = [run.point(rng.integers(0, count, count)) for _ in range(resamples)]
  tail = (1 - level) / 2 * 100
  return {f"{key}_ci": _interval([d[key] for d in draws], tail)
          for key in ("accuracy", *AXES)}


def _interval(values, tail):
  defined = [v for v in values if v is not None]
  if len(defined) < len(values) / 2:
    return None
  return [float(np.percentile(defined, tail)), float(np.percentile(defined, 100 - tail))]
