"""AccGrad: the gradient of an accuracy proxy with respect to every knob's setting.

OneAdapt's chain rule, `d proxy / d setting = <DNNGrad, InputGrad>`, three ways:

- `acc_grad` (fused; `fused` is its pure function, which the controller vmaps): one jitted
  `setting -> knob.apply -> model -> proxy` and one `jax.vjp` give the gradient for every knob
  at once. The model is `nnx.split` once; its state is an
  argument, never differentiated.
- `dnn_grad` + `knob_vjp` (split, as deployed): the server runs one backward pass on the
  frames it decoded (DNNGrad); the camera pulls that cotangent back through the differentiable
  knob chain (InputGrad) with one cheap `vjp`. No re-encoding.
- `reencode_acc_grad` (the paper's estimator): DNNGrad as above, InputGrad as the difference
  between real x264 encodes at the two neighbouring rungs of each knob, divided by the rung step.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import knobs
from oneadapt_jax import codec

_CACHE_SIZE = 16  # compiled functions kept (least recently used dropped)
_COMPILED: collections.OrderedDict = collections.OrderedDict()


def _cached(key_objects: tuple, build: Callable):
  """One compiled function per identity of (knob, proxy) and model structure, the `_CACHE_SIZE`
  most recent kept; the objects are held in the value so that their ids stay unique while
  cached (knobs hold arrays: unhashable)."""
  key = tuple(o if isinstance(o, nnx.GraphDef) else id(o) for o in key_objects)
  if key in _COMPILED:
    _COMPILED.move_to_end(key)
  else:
    _COMPILED[key] = (key_objects, build())
    while len(_COMPILED) > _CACHE_SIZE:
      _COMPILED.popitem(last=False)
  return _COMPILED[key][1]


def fused(knob: knobs.Knob, graphdef: nnx.GraphDef, proxy: Callable, *,
          shown: Callable | None = None) -> Callable:
  """The fused AccGrad as a pure function `(setting, state, segment) -> (proxy, grad)`: one
  `jax.vjp` of `proxy(model(shown(setting, segment)))` with respect to the setting only.

  `shown(setting, segment)` is what the model sees (default `knob.apply`; the controller passes
  the workload's `shown` on the picked frames). Not jitted: the controller jits and vmaps it;
  `acc_grad` jits it for one call.
  """
  shown = knob.apply if shown is None else shown

  def run(setting, state, segment):
    model = nnx.merge(graphdef, state)
    value, pullback = jax.vjp(lambda s: proxy(model(shown(s, segment))), setting)
    (grad,) = pullback(jnp.ones_like(value))
    return value, grad

  return run


def acc_grad(knob: knobs.Knob, model: nnx.Module, proxy: Callable, setting, segment):
  """Fused AccGrad: `(proxy_value, grad)` with `grad` shaped like `setting`, from one `jax.vjp`.

  Args:
    knob: a knob or chain.
    model: an NNX module taking `[..., H, W, 3]` frames.
    proxy: `outputs -> scalar`, e.g. `oneadapt_jax.proxies.detection`.
    setting: the knob's setting (array or dict of arrays) in `[0, 1]`.
    segment: `float32 [T, H, W, 3]` raw frames in `[0, 1]`.

  The jitted function is cached per (knob, model structure, proxy), so calling this once per
  segment with new settings and new frames of the same shape compiles once.
  """
  knobs.check_video(segment)
  graphdef, state = nnx.split(model)
  setting = jax.tree.map(lambda s: jnp.asarray(s, jnp.float32), setting)
  run = _cached((knob, graphdef, proxy), lambda: jax.jit(fused(knob, graphdef, proxy)))
  return run(setting, state, jnp.asarray(segment))


def _dnn_grad(graphdef, proxy: Callable):
  return _cached((graphdef, proxy), lambda: _build_dnn_grad(graphdef, proxy))


def server_grad(graphdef: nnx.GraphDef, proxy: Callable, state, frames):
  """DNNGrad as a pure function: `(proxy, d proxy / d frames)`, one forward and one backward
  pass of the model on `frames` (not jitted)."""
  value, pullback = jax.vjp(lambda x: proxy(nnx.merge(graphdef, state)(x)), frames)
  (grad,) = pullback(jnp.ones_like(value))
  return value, grad


def _build_dnn_grad(graphdef, proxy: Callable):
  return jax.jit(lambda state, frames: server_grad(graphdef, proxy, state, frames))


def dnn_grad(model: nnx.Module, proxy: Callable, frames):
  """DNNGrad: `(proxy_value, d proxy / d frames)` on the frames the server decoded."""
  graphdef, state = nnx.split(model)
  return _dnn_grad(graphdef, proxy)(state, jnp.asarray(frames, jnp.float32))


def knob_vjp(knob: knobs.Knob, setting, segment, cotangent):
  """InputGrad, pulled back: `<cotangent, d knob.apply(setting, segment) / d setting>`."""
  _, pullback = jax.vjp(lambda s: knob.apply(s, jnp.asarray(segment)), setting)
  return pullback(jnp.asarray(cotangent, jnp.float32))[0]


def reencode_acc_grad(model: nnx.Module, proxy: Callable, frames: np.ndarray, *,
                      resolution_values, qp_values, resolution: float, qp: float,
                      preset: str = "veryfast") -> tuple[float, dict[str, float], int]:
  """The paper's AccGrad for resolution and QP by re-encoding at neighbouring rungs.

  Args:
    model, proxy: the DNN and its proxy.
    frames: `uint8 [T, H, W, 3]` raw segment.
    resolution_values, qp_values: the ladders, cheapest first (as in `knob.values`).
    resolution, qp: the settings in `[0, 1]` of the current configuration.
    preset: x264 preset for the re-encodes.

  Returns:
    The proxy on the current configuration, the per-knob gradient estimates with respect to the
    settings, and the number of extra encodes it cost (cached encodes are free).
  """
  current = _config(resolution_values, qp_values, resolution, qp)
  base = codec.encode(frames, resolution=current[0], qp=current[1], preset=preset)
  value, grad_frames = dnn_grad(model, proxy, base.as_float())
  grad_frames = np.asarray(grad_frames, np.float64)
  estimates, encodes_before = {}, codec.encodes_run()
  for name, values, setting in (("resolution", resolution_values, resolution),
                                ("qp", qp_values, qp)):
    step = 1.0 / (len(values) - 1)
    low, high = codec.bracket(len(values), setting)
    if high == low:  # on a rung: use the rung below (or above at the bottom)
      low, high = (low - step, low) if low > 0 else (low, low + step)
    pair = []
    for s in (low, high):
      res_s, qp_s = (s, qp) if name == "resolution" else (resolution, s)
      config = _config(resolution_values, qp_values, res_s, qp_s)
      pair.append(codec.encode(frames, resolution=config[0], qp=config[1], preset=preset))
    difference = pair[1].as_float().astype(np.float64) - pair[0].as_float()
    estimates[name] = float(np.sum(grad_frames * difference) / (high - low))
  return float(value), estimates, codec.encodes_run() - encodes_before


def _config(resolution_values, qp_values, resolution, qp):
  def at(values, s):
    return float(np.interp(s, np.linspace(0, 1, len(values)), np.asarray(values)))
  return at(resolution_values, resolution), at(qp_values, qp)
