"""The one OneAdapt segment loop, for one run (`oneadapt run`) or many (`oneadapt batch`).

The runs on one workload advance in lock-step, segment by segment. Per segment, each run's
discrete configuration is sent for real and scored on the host (memoised: runs that agree share
the send); then one jitted, `vmap`-ed AccGrad and Adam step update every run at once, the run
axis sharded over a 1-D `Mesh` of `jax.devices()` (`NamedSharding(mesh, P("runs"))`; the model
and the segment replicated). One run is a batch of one. Under a budget, each run's lambda follows
dual ascent on its real bytes, in log space so that one segment far over budget does not throw
it out of range: `lam <- max(0, lam + dual_step * log(bytes / budget))`.

`LoopState` is everything a run needs to go on after segment `segments_done`; `checkpoint`
receives it after every segment, and `resume` takes it back, so a killed job loses at most the
segment in flight.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from oneadapt_jax.core._controller import Controller, config_of
from oneadapt_jax.core._types import Record, Tradeoff
from oneadapt_jax.core._workload import Workload


@dataclasses.dataclass
class LoopState:
  """The state of every run after `segments_done` segments, as plain lists (JSON-ready).

  Attributes:
    segments_done: segments finished.
    settings: the leaves of the runs' settings (each `[runs, ...]`), in tree order.
    opt_state: the leaves of the runs' optimiser states, in tree order.
    lams: each run's lambda (moved by dual ascent under a budget).
    records: each run's records so far.
  """

  segments_done: int
  settings: list
  opt_state: list
  lams: list[float]
  records: list[list[Record]]

  def to_json(self) -> dict:
    return {"segments_done": self.segments_done, "settings": self.settings,
            "opt_state": self.opt_state, "lams": self.lams,
            "records": [[r.to_json() for r in run] for run in self.records]}

  @classmethod
  def from_json(cls, payload: dict, *, source: str) -> LoopState:
    return cls(payload["segments_done"], payload["settings"], payload["opt_state"],
               payload["lams"], [[Record.from_json(r, source=source) for r in run]
                                 for run in payload["records"]])


def mesh() -> Mesh:
  """A 1-D mesh over every device, its axis named `"runs"`."""
  return Mesh(np.asarray(jax.devices()), ("runs",))


def _to_host(tree):
  """A (possibly multi-process) sharded pytree as NumPy arrays on every process."""
  if all(leaf.is_fully_addressable for leaf in jax.tree.leaves(tree)):
    return jax.tree.map(np.asarray, tree)
  # across processes: every process gets the whole run axis
  return multihost_utils.process_allgather(tree, tiled=True)


def _put(tree, sharding):
  """A pytree every process holds whole (host values) as arrays sharded over the run axis: each
  process places its own devices' shards."""
  return jax.device_put(jax.tree.map(np.asarray, tree), sharding)


def run_oneadapt(workload: Workload, tradeoffs: Sequence[Tradeoff], *,
                 controller: Controller | None = None, start: float = 0.5,
                 dual_step: float = 0.25, initial_lam: float = 0.0, calibrate: bool = False,
                 resume: LoopState | None = None,
                 checkpoint: Callable[[LoopState], None] | None = None,
                 progress: bool = False, method: str = "oneadapt") -> list[list[Record]]:
  """OneAdapt on `workload` at each trade-off; returns each run's records.

  Args:
    workload: the stream and task.
    tradeoffs: one run per trade-off (lambda or budget).
    controller: the controller's hyper-parameters (default `Controller()`).
    start: the setting of every knob on the first segment (0.5: the middle rung of every
      ladder; 1.0: the best quality).
    dual_step: dual ascent's step on `log(bytes / budget)` (budgets only).
    initial_lam: lambda on the first segment (budgets only).
    calibrate: scale every lambda by the two terms' ratio on the first segment: the median over
      the knobs of `|AccGrad / proxy_ref| / |ByteGrad / bytes_ref|` at the start, from that
      segment's own DNNGrad (no extra server work; the camera's chain pulled back twice, as
      `benchmarks/gradient_scale.py` does). Lambda 1 then weighs the two terms alike on the
      first segment, whatever their scales on this stream and estimator
      (`calibration_scale`). With the `decoded` and `saliency` estimators.
    resume: a `LoopState` to go on from (from `checkpoint`).
    checkpoint: called with the `LoopState` after each segment.
    progress: show a progress bar over segments.
    method: the records' method name.

  The first segment also runs the model forward on its picked frames at the best quality, for
  the normalisation; that inference is charged as profiling.
  """
  if not tradeoffs:
    raise ValueError("give at least one trade-off")
  if any(t.target is not None for t in tradeoffs):
    raise ValueError("OneAdapt ascends accuracy - lambda * cost: give it lambdas or budgets, "
                     "not an accuracy target")
  bound = (Controller() if controller is None else controller).bind(workload)
  if calibrate and bound.controller.estimator not in ("decoded", "saliency"):
    raise ValueError(f"calibrate needs the decoded or saliency estimator (the server's DNNGrad "
                     f"on the first segment), not {bound.controller.estimator!r}")
  devices = mesh()
  runs = NamedSharding(devices, P("runs"))
  count = len(tradeoffs)
  padded = math.ceil(count / devices.size) * devices.size  # every device gets whole runs
  compiled = bound.vmapped if padded > 1 else bound.batch_of_one
  estimator = bound.controller.estimator
  tradeoffs = list(tradeoffs) + [tradeoffs[-1]] * (padded - count)
  setting, opt_state = bound.init(start)
  settings = jax.tree.map(lambda x: jnp.broadcast_to(x, (padded,) + x.shape), setting)
  opt_states = jax.tree.map(lambda x: jnp.broadcast_to(x, (padded,) + jnp.shape(x)), opt_state)
  lams = [t.lam if t.lam is not None else initial_lam for t in tradeoffs]
  records: list[list[Record]] = [[] for _ in range(count)]
  first = 0
  if resume is not None:
    first, lams = resume.segments_done, list(resume.lams)
    records = [list(run) for run in resume.records]
    settings = jax.tree.unflatten(jax.tree.structure(settings),
                                  [jnp.asarray(v, jnp.float32) for v in resume.settings])
    leaves, treedef = jax.tree.flatten(opt_states)
    opt_states = jax.tree.unflatten(treedef, [jnp.asarray(v, leaf.dtype)
                                              for v, leaf in zip(resume.opt_state, leaves)])
  settings = _put(settings, runs)
  opt_states = _put(opt_states, runs)
  refs = None
  scale = None if calibrate else 1.0
  segments = range(first, workload.num_segments)
  for i in tqdm(segments, desc=f"oneadapt {workload.kind} ({devices.size} device(s))",
                disable=not progress):
    raw = workload.raw(i)
    if refs is None:  # the first segment's, also on resume
      refs = tuple(jnp.maximum(r, 1e-6) for r in bound.jitted_reference(
          bound.model_state, raw if i == 0 else workload.raw(0)))
      if estimator == "reencode":  # real bytes: normalised by the real bytes at the best
        refs = (refs[0], jnp.float32(max(workload.sent(0, workload.best, bound.picked)[1], 1)))
    host = _to_host(settings)
    spent, cotangents, reencoded = [], [], []
    for r in range(count):
      config = config_of(bound.knob, {k: v[r] for k, v in host.items()})
      extra = 0
      if estimator != "fused":  # the send, its inference keeping the pullback; the backward
        _, cotangent, extra = bound.server(workload, i, config)
        cotangents.append(cotangent)
      if estimator == "reencode":
        reencoded.append(bound.reencode(workload, i, config, cotangent, raw))
      outcome = workload.evaluate(i, config)
      records[r].append(bound.record(method, i, config, outcome, lams[r], extra))
      spent.append(outcome.bytes)
    for r, tradeoff in enumerate(tradeoffs):
      if tradeoff.budget is not None:
        used = spent[min(r, count - 1)] / (tradeoff.budget * workload.seconds_per_segment)
        lams[r] = max(0.0, lams[r] + dual_step * float(np.log(used)))
    if scale is None:  # the first segment's, at the start (on resume: the same, recomputed)
      scale = calibration_scale(bound, workload, setting, refs,
                                cotangent=cotangents[0] if i == 0 else None)
    lam_array = _put(np.asarray(lams, np.float32) * np.float32(scale), runs)
    if estimator in ("decoded", "saliency"):
      cotangents += cotangents[-1:] * (padded - count)
      cotangents = _put(jax.tree.map(lambda *c: np.stack(c), *cotangents), runs)
      settings, opt_states = compiled.camera_step(settings, opt_states, raw, cotangents, *refs,
                                                  lam_array)
    else:
      if estimator == "reencode":
        reencoded += reencoded[-1:] * (padded - count)
        grads, grad_costs = (_put({name: np.asarray([g[k][name] for g in reencoded], np.float32)
                                   for name in bound.knob.values}, runs) for k in (0, 1))
      else:
        _, grads, _, grad_costs = compiled.gradients(bound.model_state, settings, raw)
      settings, opt_states = compiled.step(settings, opt_states, grads, grad_costs, *refs,
                                           lam_array)
    if checkpoint is not None:
      checkpoint(LoopState(
          i + 1, [v.tolist() for v in jax.tree.leaves(_to_host(settings))],
          [np.asarray(v).tolist() for v in jax.tree.leaves(_to_host(opt_states))],
          [float(v) for v in lams], [list(run) for run in records]))
  return records


def calibration_scale(bound, workload: Workload, setting, refs, *, cotangent=None) -> float:
  """The median over the knobs of `|AccGrad / proxy_ref| / |ByteGrad / bytes_ref|` on the first
  segment at `setting` (see `run_oneadapt`'s `calibrate`); 1 where no knob's byte term is
  nonzero. `cotangent`: the server's DNNGrad there, when the loop already has it (else the
  server computes it)."""
  if cotangent is None:
    _, cotangent, _ = bound.server(workload, 0, config_of(bound.knob, setting))
  grad, _, grad_cost = bound.jitted.camera(setting, workload.raw(0), cotangent)
  return scale_of_terms(grad, grad_cost, refs)


def scale_of_terms(grad, grad_cost, refs) -> float:
  """The median over the knobs of `|grad / proxy_ref| / |grad_cost / bytes_ref|` (the camera's
  two terms, `refs = (proxy_ref, bytes_ref)`); 1 where no knob's byte term is nonzero."""
  proxy_ref, cost_ref = (float(r) for r in refs)
  ratios = [abs(float(grad[k]) / proxy_ref) / abs(float(grad_cost[k]) / cost_ref)
            for k in grad if float(grad_cost[k]) != 0.0]
  return float(np.median(ratios)) if ratios else 1.0


#: What a logged OneAdapt run was computed by; runs of another revision are run again, never
#: reused. 1: the fused AccGrad on two raw frames (before AccGrad on the decoded frames).
REVISION = 2

#: OneAdapt's presets (`oneadapt(preset=...)`): options of `Controller` and `run_oneadapt`.
#: `rungs` starts on the middle rung and moves up to one rung of each ladder a segment; `paper`
#: is the authors' code: start at the best quality, Adam (betas 0.5, 0.5) at learning rate 0.1
#: in the `[0, 1]` setting.
PRESETS = {
    "rungs": {"start": 0.5, "learning_rate": 1.0, "in_rungs": True},
    "paper": {"start": 1.0, "learning_rate": 0.1, "in_rungs": False},
}
_CONTROLLER_OPTIONS = ("grad_frames", "learning_rate", "betas", "in_rungs", "estimator",
                       "proxy")
_LOOP_OPTIONS = ("start", "dual_step", "initial_lam", "calibrate")


def oneadapt(workload: Workload, tradeoff: Tradeoff, *, cost=None, preset: str = "rungs",
             method: str = "oneadapt", **options) -> list[Record]:
  """OneAdapt as a method: one run of `run_oneadapt` at a `PRESETS` entry, any of its options
  overridden by `options` (`Controller`'s fields; `start`, `dual_step`, `initial_lam`,
  `calibrate`;
  `grad_frames=None`: the backward pass on every frame). `method` names the records (a
  variant's name in an ablation). `cost` is not read: what AccGrad costs is in the records
  (`backward_passes`, `profiling_frames`), priced by the `CostModel` when they are summarised."""
  del cost
  if preset not in PRESETS:
    raise ValueError(f"unknown OneAdapt preset {preset!r}; available: {', '.join(PRESETS)}")
  unknown = sorted(set(options) - set(_CONTROLLER_OPTIONS) - set(_LOOP_OPTIONS))
  if unknown:
    raise ValueError(f"unknown OneAdapt options {unknown}; available: "
                     f"{', '.join(_CONTROLLER_OPTIONS + _LOOP_OPTIONS)}")
  options = {**PRESETS[preset], **options}
  if options.get("grad_frames", 1) is None:
    options["grad_frames"] = workload.frames_per_segment
  if "betas" in options:
    options["betas"] = tuple(options["betas"])
  controller = Controller(**{k: v for k, v in options.items() if k in _CONTROLLER_OPTIONS})
  (records,) = run_oneadapt(workload, [tradeoff], controller=controller, method=method,
                            **{k: v for k, v in options.items() if k in _LOOP_OPTIONS})
  return records
