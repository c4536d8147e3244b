"""The OneAdapt controller: per-segment arithmetic as pure functions, for any `Workload`.

Per segment, the discrete configuration the setting rounds up to is sent for real (real bytes,
real accuracy); then one AccGrad and the chain's byte gradient give one Adam step (betas 0.5,
0.5, as in the paper's batch runs) on
`-proxy / proxy_ref + lam * cost / cost_ref`, both normalised by their values at the best
quality on the first segment, so that `lam` means what it means in the utility
`accuracy - lam * bytes / best_bytes`. The setting stays in `[0, 1]`.

AccGrad, two estimators (`Controller.estimator`):

- `"decoded"` (the default, as the paper deploys it): DNNGrad on the frames the server decoded,
  from the pullback of the forward pass its inference already ran (`Workload.server_vjp`: no
  second forward pass), pulled back on the camera through the differentiable knob chain at the
  raw frames (InputGrad; camera-side work, not the server's).
- `"fused"`: one `jax.vjp` through the knob chain, the model and the proxy on the raw frames
  (`oneadapt_jax.accgrad.fused`): a forward and a backward pass of the model beyond inference.
- `"saliency"`: the server's DNNGrad as in `"decoded"`, but the camera descends the authors'
  saliency-weighted error `sum |DNNGrad| * |X(setting) - X_raw|` through the differentiable
  chain (`X_raw`: the chain at the best quality) instead of ascending `<DNNGrad, X(setting)>`:
  a stale or blurred pixel where the model looks always costs, whichever way it moves the proxy.
- `"reencode"` (the authors' code): the server's DNNGrad as in `"decoded"`; the camera encodes
  the segment again at the other rung of each knob's bracketing pair (the sent configuration is
  the one) and the objective's gradient is the finite difference between the two rungs: of the
  saliency-weighted error `sum |DNNGrad| * |X - X_raw|` for the proxy, of the real bytes for the
  cost (normalised by the real bytes at the best quality). One extra encode per knob a segment,
  no differentiable chain; scalar knobs only.

The controller never asks what kind of stream it adapts: the chain, the model, the proxy and
`Workload.shown` are the workload's.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import knobs
from oneadapt_jax import accgrad
from oneadapt_jax.core._types import Config, Outcome, Record, nested_tuple
from oneadapt_jax.core._workload import Workload, WorkloadBase

#: AccGrad's estimators (see the module).
ESTIMATORS = ("decoded", "fused", "saliency", "reencode")


@dataclasses.dataclass(frozen=True)
class Controller:
  """OneAdapt's hyper-parameters; `bind(workload)` gives its compiled functions.

  Attributes:
    grad_frames: frames of each segment the backward pass runs on (evenly spaced, the last
      included; at most the workload's `frames_per_segment`).
    learning_rate: Adam's; with `in_rungs`, counted in rungs of each knob's ladder (1.0 moves up
      to one rung per segment, as the paper's optimiser moves in its discrete configuration
      index); otherwise in the `[0, 1]` setting.
    betas: Adam's.
    in_rungs: see `learning_rate`.
    estimator: one of `ESTIMATORS` (see the module).
    proxy: the name of one of the workload's other proxies (`Workload.proxies`) to ascend instead
      of its own; `None`, its own.
  """

  grad_frames: int = 1
  learning_rate: float = 1.0
  betas: tuple[float, float] = (0.5, 0.5)
  in_rungs: bool = True
  estimator: str = "decoded"
  proxy: str | None = None

  def __post_init__(self):
    if self.grad_frames < 1:
      raise ValueError(f"grad_frames must be >= 1, got {self.grad_frames}")
    if self.estimator not in ESTIMATORS:
      raise ValueError(f"unknown AccGrad estimator {self.estimator!r}; available: "
                       f"{', '.join(ESTIMATORS)}")

  def picked(self, frames: int) -> tuple[int, ...]:
    """The frames of a `frames`-frame segment the backward pass runs on."""
    count = min(self.grad_frames, frames)
    return tuple(int(i) for i in np.linspace(frames - 1, 0, count, endpoint=False)[::-1].round())

  def optimiser(self, knob: knobs.Knob) -> optax.GradientTransformation:
    optimiser = optax.adam(self.learning_rate, b1=self.betas[0], b2=self.betas[1])
    if not self.in_rungs:
      return optimiser
    rung = {name: 1.0 / (len(values) - 1) for name, values in knob.values.items()}
    return optax.chain(optimiser, optax.stateless(
        lambda updates, params=None: {n: u * rung[n] for n, u in updates.items()}))

  def bind(self, workload: Workload) -> Bound:
    """The controller's functions on `workload`, compiled once per (controller, workload)."""
    return _bound(self, workload)


def setting_of(knob: knobs.Knob, config: Config) -> dict:
  """A chain's setting on the rungs of a discrete `config` (`{name: physical value}`, each a
  rung of its ladder): the inverse of `config_of`."""
  return {name: jnp.float32(list(values).index(config[name]) / (len(values) - 1))
          for name, values in knob.values.items()}


def config_of(knob: knobs.Knob, setting) -> Config:
  """The discrete configuration a setting rounds up to, at the rungs' exact values
  (interpolating in float32 would hand x264 QP 22.0000019); a knob whose setting is an array
  gives a nested tuple of values."""
  rounded = knob.round(setting)
  config = {}
  for name, values in knob.values.items():
    physical = np.asarray(values, np.float64)[np.asarray(knobs.ladder_index(len(values),
                                                                          rounded[name]))]
    # A per-block knob (roi_quality) gives a map: a nested tuple of rows.
    config[name] = float(physical) if physical.ndim == 0 else nested_tuple(physical.tolist())
  return config


class Compiled(NamedTuple):
  """A bound controller's compiled functions (see `Bound`'s methods of the same names)."""

  gradients: Callable
  step: Callable
  camera: Callable
  camera_step: Callable


class Bound:
  """A controller bound to a workload: pure functions of the model state, settings and
  segments; `gradients`, `reference` and `step` are jitted (the first two take one setting,
  the vmapped variants in `oneadapt_jax.core.run_oneadapt` take many)."""

  def __init__(self, controller: Controller, workload: Workload):
    self.controller = controller
    self.knob = workload.knob
    self.frames = workload.frames_per_segment
    self.picked = controller.picked(self.frames)
    self.graphdef, self.model_state = nnx.split(workload.model)
    self.optimiser = controller.optimiser(self.knob)
    proxy = workload.proxy
    if controller.proxy is not None:
      others = dict(getattr(workload, "proxies", {}))
      if controller.proxy not in others:
        raise ValueError(f"the {workload.kind} {workload.task} workload has no proxy "
                         f"{controller.proxy!r}; its others: {sorted(others) or 'none'}")
      proxy = others[controller.proxy]
    if controller.estimator == "reencode":
      arrays = [n for n, s in self.knob.init().items() if jnp.ndim(s)]
      if arrays:
        raise ValueError(f"the re-encoding estimator steps scalar knobs rung by rung; {arrays} "
                         "take a setting per block: use estimator='decoded'")
    shown = functools.partial(_shown, workload.shown, frames=self.picked)
    self._shown_and_cost = functools.partial(
        _shown, getattr(workload, "shown_and_cost", None) or functools.partial(
            WorkloadBase.shown_and_cost, workload), frames=self.picked)
    self._acc_grad = accgrad.fused(self.knob, self.graphdef, proxy, shown=shown)
    self._shown = shown
    self._proxy = proxy

  def init(self, start: float):
    if not 0.0 <= start <= 1.0:
      raise ValueError(f"start must be a setting in [0, 1], got {start}")
    setting = jax.tree.map(lambda s: jnp.full_like(s, start), self.knob.init())
    return setting, self.optimiser.init(setting)

  def gradients(self, state, setting, raw):
    """`(proxy, AccGrad, bytes, d bytes / d setting)` at one setting (the fused estimator)."""
    value, grad = self._acc_grad(setting, state, raw)
    cost, grad_cost = jax.value_and_grad(self.knob.cost)(setting, raw)
    return value, grad, cost, grad_cost

  def camera(self, setting, raw, cotangent):
    """`(AccGrad, bytes, d bytes / d setting)` at one setting from the server's DNNGrad on the
    picked frames (`cotangent`, shaped like `shown` on them): the camera's `vjp` through the
    knob chain at the raw frames."""
    shown, cost, cotangent, pullback = self._camera_vjp(setting, raw, cotangent)
    # One pass through the chain, pulled back twice: the proxy's cotangent, then the bytes'.
    (grad,) = pullback((cotangent, jnp.zeros_like(cost)))
    (grad_cost,) = pullback((jax.tree.map(jnp.zeros_like, shown), jnp.ones_like(cost)))
    return grad, cost, grad_cost

  def _camera_vjp(self, setting, raw, cotangent):
    """The chain's one pass at `setting` for `camera` and `camera_step`: `(shown, bytes, the
    cotangent of shown, pullback)`, the cotangent the saliency error's where that estimator runs."""
    (shown, cost), pullback = jax.vjp(lambda s: self._shown_and_cost(s, raw), setting)
    if self.controller.estimator == "saliency":
      cotangent = _saliency(cotangent, shown, self._best(raw))
    return shown, cost, cotangent, pullback

  def server(self, workload: Workload, index: int, config: Config):
    """The server's DNNGrad on the picked frames it decoded of segment `index` at `config`:
    `(proxy, d proxy / d decoded frames, extra forward passes)`; the forward pass is the one
    inference ran (`Workload.server_vjp`), the backward pass is the model's alone."""
    kept = workload.server_vjp(index, config, self.picked)
    value, proxy_pullback = jax.vjp(self._proxy, kept.outputs)
    (cotangent,) = kept.pullback(proxy_pullback(jnp.ones_like(value))[0])
    return value, cotangent, kept.extra_forwards

  def reencode(self, workload: Workload, index: int, config: Config, cotangent, raw):
    """The authors' AccGrad by re-encoding (estimator `"reencode"`): `(d proxy / d setting,
    d bytes / d setting)`, dicts of floats per knob, for the configuration `config` sent of
    segment `index` and the server's DNNGrad on its picked frames (`cotangent`).

    Each knob's setting lies in a pair of neighbouring rungs, the sent one among them (at the
    cheapest rung: it and the next). The camera encodes the segment with that knob at the pair's
    other rung (`Workload.sent`); the proxy's drop at a configuration `c` is read as the
    saliency-weighted error `sum |DNNGrad| * |X(c) - X_raw|` (`X_raw`: the chain's output at the
    best quality), and both gradients are differences over the pair divided by its width in the
    setting, the bytes real."""
    weight = np.abs(np.asarray(cotangent, np.float64))
    original = self._original(raw)

    def at(c):
      inputs, num_bytes = workload.sent(index, c, self.picked)
      return float(np.sum(weight * np.abs(np.asarray(inputs, np.float64) - original))), num_bytes

    current = at(config)
    grad, grad_cost = {}, {}
    for name, values in self.knob.values.items():
      values = np.asarray(values, np.float64)
      rung = int(np.argmin(np.abs(values - config[name])))
      other = rung - 1 if rung > 0 else 1
      moved = at({**config, name: float(values[other])})
      (low, high) = (moved, current) if other < rung else (current, moved)
      width = abs(other - rung) / (len(values) - 1)
      grad[name] = (low[0] - high[0]) / width
      grad_cost[name] = (high[1] - low[1]) / width
    return grad, grad_cost

  def _best(self, raw):
    """`shown` at the best quality, traced inline: called as a jitted function from both the
    vmapped and the one-run camera, it made JAX 0.10.1 fail the second ("Execution supplied 5
    buffers but compiled program expected 15"; tests/test_server_grad.py keeps the case)."""
    return self._shown(self.knob.init(), raw)

  @functools.cached_property
  def _best_shown(self):
    return jax.jit(self._best)

  def _original(self, raw) -> np.ndarray:
    """`X_raw` of `reencode` on the host, computed once per segment (every run of a segment
    passes the same `raw`; the last one is held, so that its identity stays unique)."""
    if self._last_original[0] is not raw:
      self._last_original = (raw, np.asarray(self._best_shown(raw), np.float64))
    return self._last_original[1]

  _last_original: tuple = (None, None)

  def camera_step(self, setting, opt_state, raw, cotangent, proxy_ref, cost_ref, lam):
    """`camera` and `step` at once, what the loop runs for the `decoded` and `saliency`
    estimators: the chain's one pass pulled back once, with the objective's cotangent
    `(-DNNGrad / proxy_ref, lam / cost_ref)`, gives the step's gradient directly (`camera`
    pulls back twice to give its two terms apart; benchmarks/throughput.py times both)."""
    _, cost, cotangent, pullback = self._camera_vjp(setting, raw, cotangent)
    scaled = jax.tree.map(lambda c: -c / proxy_ref, cotangent)  # a point cloud is a pytree
    (loss_grad,) = pullback((scaled, (lam / cost_ref) * jnp.ones_like(cost)))
    return self._update(setting, opt_state, loss_grad)

  def reference(self, state, raw):
    """Proxy and bytes at the best quality: what the objective is normalised by."""
    best = self.knob.init()
    model = nnx.merge(self.graphdef, state)
    return self._proxy(model(self._shown(best, raw))), self.knob.cost(best, raw)

  def step(self, setting, opt_state, grad_proxy, grad_cost, proxy_ref, cost_ref, lam):
    """One Adam step on `-proxy / proxy_ref + lam * cost / cost_ref`, kept in `[0, 1]`."""
    # Ascent on the proxy, descent on the cost: the one place the sign convention lives.
    loss_grad = jax.tree.map(lambda ga, gc: -ga / proxy_ref + lam * gc / cost_ref,
                             grad_proxy, grad_cost)
    return self._update(setting, opt_state, loss_grad)

  def _update(self, setting, opt_state, loss_grad):
    # optax's Adam raises b1 to an int32 step count, which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = self.optimiser.update(loss_grad, opt_state, setting)
      setting = optax.apply_updates(setting, updates)
    return jax.tree.map(lambda v: jnp.clip(v, 0.0, 1.0), setting), opt_state

  def record(self, method: str, segment: int, config: Config, outcome: Outcome,
             lam: float, extra_forwards: int = 0) -> Record:
    """One segment's record: AccGrad's backward passes on every segment, its forward passes
    beyond inference (the fused estimator's, or `extra_forwards`), and the normalising forward
    pass at the best quality on the first; the re-encoding estimator's camera encodes (one per
    knob, and the best quality's on the first segment, the bytes' normaliser)."""
    backward = len(self.picked)
    estimator = self.controller.estimator
    forwards = (backward if estimator == "fused" else extra_forwards) + (
        backward if segment == 0 else 0)
    encodes = 1 + (len(self.knob.values) + (segment == 0) if estimator == "reencode" else 0)
    return Record(method, segment, dict(config), outcome.accuracy, outcome.bytes,
                  outcome.frames_sent, backward_passes=backward, lam=lam,
                  profiling_frames=forwards, camera_encodes=encodes)

  @functools.cached_property
  def vmapped(self) -> Compiled:
    """`Compiled` functions vmapped over runs (settings, optimiser states, lambdas,
    cotangents), jitted."""
    return Compiled(jax.jit(jax.vmap(self.gradients, in_axes=(None, 0, None))),
                    jax.jit(jax.vmap(self.step, in_axes=(0, 0, 0, 0, None, None, 0))),
                    jax.jit(jax.vmap(self.camera, in_axes=(0, None, 0))),
                    jax.jit(jax.vmap(self.camera_step, in_axes=(0, 0, None, 0, None, None, 0))))

  @functools.cached_property
  def batch_of_one(self) -> Compiled:
    """`vmapped`'s signatures, for one run, compiled without `vmap`.

    `vmap` lets XLA reassociate the model's sums, which moves AccGrad in its sixth digit, and
    Adam's normalised step can turn that into a rung of difference some segments later. One run
    therefore runs the unbatched program, so that `oneadapt run` gives the same records however
    it is called; runs batched with others agree with it to float rounding.
    """
    jitted = self.jitted
    first = functools.partial(jax.tree.map, lambda x: x[0])
    batch = functools.partial(jax.tree.map, lambda x: x[None])

    def one_gradients(state, settings, raw):
      return batch(jitted.gradients(state, first(settings), raw))

    def one_step(settings, opt_states, grads, grad_costs, proxy_ref, cost_ref, lams):
      return batch(jitted.step(first(settings), first(opt_states), first(grads),
                               first(grad_costs), proxy_ref, cost_ref, lams[0]))

    def one_camera(settings, raw, cotangents):
      return batch(jitted.camera(first(settings), raw, first(cotangents)))

    def one_camera_step(settings, opt_states, raw, cotangents, proxy_ref, cost_ref, lams):
      return batch(jitted.camera_step(first(settings), first(opt_states), raw,
                                      first(cotangents), proxy_ref, cost_ref, lams[0]))

    return Compiled(one_gradients, one_step, one_camera, one_camera_step)

  @functools.cached_property
  def jitted(self) -> Compiled:
    """`Compiled` functions for one run, jitted."""
    return Compiled(jax.jit(self.gradients), jax.jit(self.step), jax.jit(self.camera),
                    jax.jit(self.camera_step))

  @functools.cached_property
  def jitted_reference(self):
    return jax.jit(self.reference)


def _saliency(cotangent, shown, best):
  """The cotangent of `-sum |DNNGrad| * |X(s) - X_raw|` at `X(s) = shown`, `X_raw = best`."""
  return jax.tree.map(lambda c, x, b: -jnp.abs(c) * jnp.sign(x - b), cotangent, shown, best)


def _shown(shown, setting, raw, *, frames):
  return shown(setting, raw, frames)


_BOUND_CACHE_SIZE = 8  # workloads whose compiled controller functions are kept (LRU)
_BOUND: collections.OrderedDict = collections.OrderedDict()


def _bound(controller: Controller, workload: Workload) -> Bound:
  """Compiled functions per (controller, workload), the `_BOUND_CACHE_SIZE` most recent kept; the
  workload is held in the value so that its id stays unique while cached."""
  key = (controller, id(workload))
  if key in _BOUND:
    _BOUND.move_to_end(key)
    return _BOUND[key][1]
  bound = Bound(controller, workload)
  _BOUND[key] = (workload, bound)
  while len(_BOUND) > _BOUND_CACHE_SIZE:
    _BOUND.popitem(last=False)
  return bound
