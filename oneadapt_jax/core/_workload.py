"""The `Workload` protocol: one kind of stream with a task, as every method sees it.

The controller, every baseline, the oracle, the batch job, the proxy check and the CLI take a
`Workload` and never ask what kind of stream it is. A kind of stream (video, audio, LiDAR, or
one of your own) implements the protocol in its own folder under `oneadapt_jax/workloads/` and
registers a builder there (`oneadapt_jax.workloads.REGISTRY`).

Two helpers implement most of it: `WorkloadBase` (memoised evaluation, the best
configuration, the grid of the chain's ladders) and `SentWorkload`, for streams whose server
runs the model once on each segment it receives (audio, LiDAR): a subclass of it names its
knob chain, model, proxy, metric and real sender, and is done.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import json
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
from oneadapt_jax.core._types import Config, Outcome, config_key


@runtime_checkable
class Workload(Protocol):
  """One kind of stream with a task: what every adaptation method needs, and nothing more.

  Attributes:
    kind: the kind of stream (`"video"`, `"audio"`, ...), for records and labels only.
    task: what the model does, e.g. `"detection"`.
    source: where the segments come from (a clip's name, a file, a stream's description).
    knob: the differentiable knob chain in sending order (`knobs.chain`); its `values` are the
      ladders a real sender uses, its `cost` the differentiable byte estimate.
    model: the server's NNX model.
    proxy: `outputs -> scalar`, the differentiable accuracy proxy OneAdapt ascends.
    num_segments: segments in the stream.
    frames_per_segment: forward passes the server runs on a segment at full rate.
    seconds_per_segment: the stream time one segment covers.
    extra_knobs: knobs the real sender has besides the chain (video: Reducto's
      `"frame_filter"`); a configuration may name them, and methods declare which they need.
    warmup_segments: the prefix no method is scored on; profiling baselines may profile it
      offline, and every method may use it.

  Optional: `proxies`, other proxies by name (`Controller(proxy=NAME)` ascends one of them);
  `shown_and_cost(setting, raw, frames) -> (shown, cost)`, both in one pass through the chain
  (`WorkloadBase` has the plain one; a stream may share work between them, as video does).
  """

  kind: str
  task: str
  source: str
  knob: knobs.Knob
  model: nnx.Module
  proxy: Callable[[Any], jax.Array]
  num_segments: int
  frames_per_segment: int
  seconds_per_segment: float
  extra_knobs: Mapping[str, knobs.Knob]
  warmup_segments: int

  def raw(self, index: int) -> Any:
    """Segment `index` as `knob.apply` takes it."""

  def shown(self, setting: Any, raw: Any, frames: Sequence[int]) -> Any:
    """What the server's model sees of `raw` at `setting`, on the given frame indices (a stream
    inferred once per segment ignores `frames`). Differentiable in `setting`."""

  def observe(self, index: int, config: Config) -> tuple[Any, Outcome]:
    """Segment `index` sent for real at `config`: `(model outputs on what was received,
    Outcome)`. One send and one inference."""

  def evaluate(self, index: int, config: Config) -> Outcome:
    """`observe`'s outcome, memoised: methods ask for the same configurations again."""

  def server_vjp(self, index: int, config: Config, frames: Sequence[int]) -> ServerVjp:
    """Segment `index` as the server received it at `config`, on the given frames, with the
    model's outputs there and their pullback: what OneAdapt's DNNGrad needs. Reuses the forward
    pass of `observe` when the segment was just sent (`ServerVjp.extra_forwards` counts any
    other)."""

  def sent(self, index: int, config: Config, frames: Sequence[int]) -> tuple[Any, int]:
    """Segment `index` encoded at `config` and decoded, on the given frames, with its bytes:
    the sender's work alone, no inference (OneAdapt's re-encoding estimator asks the camera
    for it at neighbouring rungs)."""

  @property
  def best(self) -> Config:
    """The best-quality configuration: every ladder's top."""

  def best_bytes(self, index: int) -> int:
    """Bytes of segment `index` at `best`: the normaliser of the bytes in the utility."""

  def grid(self) -> list[Config]:
    """The joint configurations the profiling baselines and the oracle search, each with its
    keys in the order a knob-at-a-time search (Chameleon) walks them."""


class ServerVjp(NamedTuple):
  """The server's side of AccGrad on one sent segment (`Workload.server_vjp`).

  Attributes:
    inputs: what the model ran on (the decoded frames asked for; a stream inferred once per
      segment: the whole received segment).
    outputs: the model's outputs on `inputs`.
    pullback: `d outputs -> (d inputs,)`, the model's backward pass only.
    extra_forwards: forward passes run for it beyond the inference of the segment (0 when the
      inference's own forward pass was kept).
  """

  inputs: Any
  outputs: Any
  pullback: Callable
  extra_forwards: int


#: Pullbacks kept per workload between a send and its AccGrad (their residuals are activations).
KEPT_PULLBACKS = 8


class WorkloadBase:
  """The parts of `Workload` that follow from the chain and a memo. A subclass sets the
  attributes and implements `observe`; `segments` holds the stream's segments."""

  kind: ClassVar[str]
  task: str
  source: str
  knob: knobs.Knob
  segments: Sequence[Any]
  frames_per_segment: int = 1
  seconds_per_segment: float = 1.0
  extra_knobs: Mapping[str, knobs.Knob] = {}
  warmup_segments: int = 0

  @property
  def num_segments(self) -> int:
    return len(self.segments)

  @functools.cached_property
  def _memo(self) -> dict:
    """`(segment, config_key) -> Outcome` of every configuration sent so far."""
    return {}

  @functools.cached_property
  def _pullbacks(self) -> collections.OrderedDict:
    """`(segment, config_key, frames) -> ServerVjp` kept by `observe(keep=...)`, the
    `KEPT_PULLBACKS` most recent."""
    return collections.OrderedDict()

  def keep_pullback(self, index: int, config: Config, frames: Sequence[int],
                    kept: ServerVjp) -> None:
    """Keeps the pullback `observe(..., keep=frames)` made, for `server_vjp`."""
    self._pullbacks[(index, config_key(config), tuple(frames))] = kept
    while len(self._pullbacks) > KEPT_PULLBACKS:
      self._pullbacks.popitem(last=False)

  def server_vjp(self, index: int, config: Config, frames: Sequence[int]) -> ServerVjp:
    key = (index, config_key(config), tuple(frames))
    if key not in self._pullbacks and (index, config_key(config)) not in self._memo:
      self.observe(index, dict(config), keep=tuple(frames))
    if key in self._pullbacks:
      return self._pullbacks.pop(key)
    # Sent before (memoised, or read back from a file): the server ran this forward pass when it
    # inferred the segment; a simulation that did not keep it runs it again, uncharged.
    inputs = self.received(index, config, frames)
    outputs, pullback = jax.vjp(self._infer, inputs)
    return ServerVjp(inputs, outputs, pullback, 0)

  def received(self, index: int, config: Config, frames: Sequence[int]) -> Any:
    """What the model runs on of segment `index` sent at `config`, on `frames`."""
    return self.sent(index, config, frames)[0]

  def sent(self, index: int, config: Config, frames: Sequence[int]) -> tuple[Any, int]:
    raise NotImplementedError(f"the {self.kind} workload {type(self).__name__} has no sender "
                              "to re-encode at other configurations (Workload.sent)")

  def raw(self, index: int) -> Any:
    return jax.tree.map(jnp.asarray, self.segments[index])

  def shown(self, setting, raw, frames):
    del frames  # one forward pass covers the whole segment
    return self.knob.apply(setting, raw)

  def shown_and_cost(self, setting, raw, frames):
    """`(shown(setting, raw, frames), knob.cost(setting, raw))`: what the camera's `vjp`
    differentiates, in one function so that a stream can share the chain between them."""
    return self.shown(setting, raw, frames), self.knob.cost(setting, raw)

  def observe(self, index: int, config: Config) -> tuple[Any, Outcome]:
    raise NotImplementedError

  def remember(self, index: int, config: Config, outcome: Outcome) -> Outcome:
    """Stores an outcome `observe` computed, for `evaluate` (and in the file `keep_outcomes`
    named, if any)."""
    self._memo[(index, config_key(config))] = outcome
    store = getattr(self, "_store", None)
    if store is not None:
      with store.open("a") as f:
        f.write(json.dumps({"segment": index, "config": dict(config),
                            "outcome": list(outcome)}) + "\n")
    return outcome

  def identity(self) -> dict:
    """What outcomes depend on: the stream, the task, the model and the sender's options (not
    the proxy, which only OneAdapt reads)."""
    return {"kind": self.kind, "task": self.task, "source": self.source,
            "knobs": list(self.knob.values), "model": getattr(self, "model_name", None),
            "preset": getattr(self, "preset", None),
            "frames_per_segment": self.frames_per_segment,
            "seconds_per_segment": self.seconds_per_segment}

  def keep_outcomes(self, path: str | pathlib.Path) -> int:
    """Keeps every outcome in `path` (JSON lines), reading back those already there, so that an
    interrupted experiment never sends a configuration twice. Returns how many were read.

    Raises `ValueError` when the file was written for another workload (`identity`)."""
    path = pathlib.Path(path)
    identity, read = self.identity(), 0
    if path.exists() and path.stat().st_size:
      text = path.read_text()
      if not text.endswith("\n"):  # cut mid-line by a kill: the next entry starts afresh
        with path.open("a") as f:
          f.write("\n")
      lines = text.splitlines()
      header = json.loads(lines[0])
      if header.get("identity") != identity:
        raise ValueError(f"{path} holds outcomes of another workload ({header.get('identity')}; "
                         f"this one is {identity}). Move it away or choose another --out.")
      for line in lines[1:]:
        try:
          entry = json.loads(line)
        except json.JSONDecodeError:  # the line being written when a run was killed
          continue
        self._memo[(entry["segment"], config_key(entry["config"]))] = Outcome(*entry["outcome"])
        read += 1
    else:
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(json.dumps({"identity": identity}) + "\n")
    self._store = path
    return read

  def evaluate(self, index: int, config: Config) -> Outcome:
    key = (index, config_key(config))
    if key not in self._memo:
      self.observe(index, dict(config))
    return self._memo[key]

  @property
  def best(self) -> Config:
    return {name: float(values[-1]) for name, values in self.knob.values.items()}

  def best_bytes(self, index: int) -> int:
    return self.evaluate(index, self.best).bytes

  def ladders(self, *, stride: int = 1) -> dict[str, tuple[float, ...]]:
    """Every knob's ladder, every `stride`-th rung counted from the best (which is kept)."""
    return {name: tuple(float(v) for v in values[::-1][::stride][::-1])
            for name, values in self.knob.values.items()}

  def grid(self) -> list[Config]:
    ladders = self.ladders()
    return [dict(zip(ladders, combo)) for combo in itertools.product(*ladders.values())]


@dataclasses.dataclass(eq=False)
class SentWorkload(WorkloadBase):
  """A stream whose server runs the model once on each segment it receives.

  A subclass sets `kind` and `task` and implements `send`; the constructor takes the segments,
  the knob chain, the model, the proxy and the metric, and computes the references (the model's
  outputs on the raw segments).

  Attributes:
    metric: `(outputs, reference outputs) -> float` in `[0, 1]`, on NumPy arrays.
  """

  source: str
  segments: Sequence[Any]
  knob: knobs.Knob
  model: nnx.Module
  proxy: Callable[[Any], jax.Array]
  metric: Callable[[np.ndarray, np.ndarray], float]
  references: list = dataclasses.field(default_factory=list, repr=False)

  def __post_init__(self):
    if not self.segments:
      raise ValueError(f"the {self.kind} stream {self.source!r} has no segments to adapt over")
    self._infer = jax.jit(lambda data: self.model(data))
    if not self.references:
      self.references = [np.asarray(self._infer(self.raw(i))) for i in range(self.num_segments)]

  def send(self, index: int, config: Config) -> tuple[Any, int]:
    """`(what the server receives of segment index at config, bytes sent)`: the real sender."""
    raise NotImplementedError

  def send_counted(self, index: int, config: Config) -> tuple[Any, int, int]:
    """`send` and the frames the server runs the model on (default 1: the whole segment is one
    forward pass; a stream whose held frames reuse a result counts the frames sent)."""
    return (*self.send(index, config), 1)

  def sent(self, index, config, frames):
    del frames  # one forward pass covers the whole segment
    received, num_bytes = self.send(index, config)
    return jax.tree.map(jnp.asarray, received), int(num_bytes)

  def observe(self, index: int, config: Config, *, keep: Sequence[int] | None = None
              ) -> tuple[Any, Outcome]:
    """The model on what was sent (`keep`: run it through `jax.vjp` and keep its pullback for
    `server_vjp`)."""
    received, num_bytes, frames_sent = self.send_counted(index, config)
    received = jax.tree.map(jnp.asarray, received)
    if keep is None:
      outputs = self._infer(received)
    else:
      outputs, pullback = jax.vjp(self._infer, received)
      self.keep_pullback(index, config, keep, ServerVjp(received, outputs, pullback, 0))
    accuracy = self.metric(np.asarray(outputs), self.references[index])
    return outputs, self.remember(index, config, Outcome(accuracy, num_bytes, frames_sent))
