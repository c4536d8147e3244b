"""The values every method passes around: configurations, outcomes, trade-offs and records.

A configuration is a `dict[str, float]` from knob name to the physical value a real sender uses
(`{"resolution": 0.5, "frame_rate": 5.0, "qp": 32.0}`), the same for every kind of stream. A knob
whose setting is an array (`knobs.roi_quality`: one QP per macroblock) takes a nested tuple of
physical values, row by row; a uniform map and its one value are the same configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

Config = dict[str, "float | tuple"]

#: The version of `records.jsonl`, batch checkpoints and `results.json`. Version 1 (before the
#: workload protocol) stored video configurations as flat fields and audio/LiDAR ones as
#: `settings`; version 2 (before the evaluation protocol) holds baseline runs of other decision
#: rules and totals with the warm-up in them. Both are refused with a message, never misread.
SCHEMA_VERSION = 3


def config_key(config: Mapping[str, Any]) -> tuple:
  """A hashable, order-free key of a configuration (for memos and sets). A per-block map (nested
  sequences, e.g. as JSON gives them back) keys as a nested tuple, or as its value when uniform."""
  return tuple(sorted((name, _frozen(value)) for name, value in config.items()))


def _frozen(value) -> float | tuple:
  array = np.asarray(value, np.float64)
  if array.size and np.all(array == array.flat[0]):
    return float(array.flat[0])
  return nested_tuple(array.tolist())


def nested_tuple(value):
  """Nested lists as nested tuples (hashable)."""
  return tuple(map(nested_tuple, value)) if isinstance(value, list) else value


class Outcome(NamedTuple):
  """What one segment sent at one configuration really gave: accuracy against the best-quality
  output, bytes on the wire, and frames the server ran the model on (one per forward pass)."""

  accuracy: float
  bytes: int
  frames_sent: int


@dataclasses.dataclass(frozen=True)
class Tradeoff:
  """What a method aims at: a `lam` (utility `accuracy - lam * relative bytes`), a `budget`
  (bytes per second of stream) or an accuracy `target` (the cheapest configuration that meets
  it, as Reducto states its goal); exactly one is set."""

  lam: float | None = None
  budget: float | None = None
  target: float | None = None

  def __post_init__(self):
    if sum(v is not None for v in (self.lam, self.budget, self.target)) != 1:
      raise ValueError("a trade-off is a lambda, a budget (bytes/s) or an accuracy target, "
                       "exactly one")
    if self.lam is not None and not (np.isfinite(self.lam) and self.lam >= 0):
      raise ValueError(f"lambda must be finite and >= 0, got {self.lam}")
    if self.budget is not None and not (np.isfinite(self.budget) and self.budget > 0):
      raise ValueError(f"budget must be a positive number of bytes per second, got {self.budget}")
    if self.target is not None and not 0.0 < self.target <= 1.0:
      raise ValueError(f"an accuracy target is in (0, 1], got {self.target}")

  @property
  def label(self) -> str:
    if self.lam is not None:
      return f"lambda={self.lam:g}"
    if self.budget is not None:
      return f"budget={self.budget:g}B/s"
    return f"target={self.target:g}"

  @classmethod
  def parse(cls, label: str) -> Tradeoff:
    """The trade-off of a `label`."""
    name, _, value = label.partition("=")
    value = value.removesuffix("B/s")
    if name not in ("lambda", "budget", "target") or not value:
      raise ValueError(f"a trade-off label is lambda=V, budget=VB/s or target=V, got {label!r}")
    return cls(**{"lam" if name == "lambda" else name: float(value)})

  def score(self, accuracy: float, num_bytes: float, best_bytes: float, seconds: float = 1.0):
    """A key to maximise: utility for a lambda; for a budget, the most accurate configuration
    that fits, or the cheapest when none does; for a target, the cheapest configuration that
    meets it, or the most accurate when none does."""
    if self.lam is not None:
      return (1, utility(accuracy, num_bytes, best_bytes, self.lam))
    if self.budget is not None:
      if num_bytes <= self.budget * seconds:
        return (1, accuracy)
      return (0, -num_bytes)
    if accuracy >= self.target:
      return (1, -num_bytes)
    return (0, accuracy)


def utility(accuracy: float, num_bytes: float, best_bytes: float, lam: float) -> float:
  """`accuracy - lam * bytes / best_bytes`: the paper's utility, bytes normalised by the
  best-quality configuration's."""
  return accuracy - lam * num_bytes / best_bytes


class SchemaError(ValueError):
  """A records, checkpoint or results file written by another version of oneadapt-jax."""


@dataclasses.dataclass
class Record:
  """One method's decision on one segment of any kind of stream, and everything it cost.

  Attributes:
    method: the method's registered name (`"oneadapt"`, `"awstream"`, `"static"`, ...).
    segment: the segment's index.
    config: knob name -> physical value sent (see `Config`).
    accuracy: the real metric against the model's output on the best-quality input.
    bytes: real bytes sent.
    dnn_frames: forward passes on what was sent.
    backward_passes: backward passes (AccGrad), one per frame it ran on.
    profiling_frames: forward passes spent on configurations not sent.
    camera_encodes: encodes the camera ran for this segment.
    lam: the trade-off in force (dual ascent moves it under a budget).
  """

  method: str
  segment: int
  config: Config
  accuracy: float
  bytes: int
  dnn_frames: int
  backward_passes: int = 0
  profiling_frames: int = 0
  camera_encodes: int = 1
  lam: float | None = None

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, entry: Mapping[str, Any], *, source: str = "a results file") -> Record:
    """The record of a JSON object; a version-1 record gets a `SchemaError` saying what to do."""
    if not isinstance(entry.get("config"), dict):
      raise SchemaError(
          f"{source} was written by an older oneadapt-jax (records without a `config` dict, "
          f"schema 1; this version reads schema {SCHEMA_VERSION}). Move it away, or choose "
          "another --out, to start afresh.")
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in entry.items() if k in fields})


def check_schema(payload: Mapping[str, Any], *, source: str) -> None:
  """Raises `SchemaError` unless `payload` says it is of this version's schema."""
  found = payload.get("schema")
  if found != SCHEMA_VERSION:
    older = found is None or isinstance(found, int) and found < SCHEMA_VERSION
    raise SchemaError(
        f"{source} was written by {'an older' if older else 'another'} oneadapt-jax "
        f"(schema {found or 1}; this version reads schema {SCHEMA_VERSION}). Move it away, or "
        "choose another --out, to start afresh.")
