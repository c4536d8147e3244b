"""The OneAdapt controller, and the driver that runs it and its baselines on real encodes.

`oneadapt`: per segment, encode with x264 at the current discrete configuration (real bytes),
run the model on what was decoded (real accuracy), then one fused AccGrad (`jax.vjp` through
the knob chain resolution -> frame rate -> quantization, the model and the proxy) and the
surrogate's byte gradient give one Adam step (betas 0.5, 0.5, learning rate 0.5, as in the
paper's batch runs) on `-proxy / proxy_ref + lam * cost / cost_ref`, both normalised by their
values at the best-quality setting on the first segment, so `lam` means what it means in the
utility `accuracy - lam * bytes / best_bytes`. The setting stays in `[0, 1]` and is rounded up to
the ladders for the next segment. With a bytes-per-second budget instead of a fixed `lam`,
`lam` follows dual ascent on the real bytes, in log space so that one segment far over budget
does not throw it out of range: `lam <- max(0, lam + dual_step * log(bytes / budget))`.

The backward pass is the server's extra work; `grad_frames` runs it on that many evenly spaced
frames of the segment instead of all of them (the knob chain still sees the whole segment).

`run` runs methods (this controller and `oneadapt_jax.baselines`) at every trade-off plus the
static sweep, resumably, and writes `results.json`; `compare` reads OneAdapt against the
baselines at matched accuracy and at matched bandwidth.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

import knobs
from oneadapt_jax import baselines, fidelity, streams
from oneadapt_jax.workload import Config, Record, Tradeoff, Workload, utility

__all__ = ("METHODS", "Controller", "compare", "oneadapt", "run", "summarise", "versus_static")


MEMBERS = ("resolution", "frame_rate", "qp")


@dataclasses.dataclass(frozen=True)
class Controller:
  """OneAdapt's per-segment arithmetic as pure functions, shared by `oneadapt` (one run) and
  `oneadapt_jax.batch` (many runs, vmapped and sharded across devices).

  Attributes:
    frames: frames per segment.
    grad_frames: frames of each segment the backward pass runs on (evenly spaced, the last
      included).
    learning_rate, betas, in_rungs: Adam's settings (see `oneadapt`).
    modality: `"video"` (the chain resolution -> frame rate -> QP over x264), or `"audio"` /
      `"lidar"` (`oneadapt_jax.streams`: one forward pass per segment, every frame picked).
  """

  frames: int = 10
  grad_frames: int = 2
  learning_rate: float = 1.0
  betas: tuple[float, float] = (0.5, 0.5)
  in_rungs: bool = True
  modality: str = "video"

  def __post_init__(self):
    if self.modality not in ("video", *streams.MODALITIES):
      raise ValueError(f"unknown modality {self.modality!r}; available: video, "
                       f"{', '.join(streams.MODALITIES)}")
    if not 1 <= self.grad_frames <= self.frames:
      raise ValueError(f"grad_frames must be within 1..{self.frames}, got {self.grad_frames}")

  @functools.cached_property
  def knob(self) -> knobs.Knob:
    """Video: the chain resolution -> frame rate -> quantization, its cost the rate model's
    bytes; audio and LiDAR: `streams.audio_knob` / `streams.lidar_knob`."""
    if self.modality == "video":
      return fidelity.surrogate_chain()
    return {"audio": streams.audio_knob, "lidar": streams.lidar_knob}[self.modality](self.members)

  @functools.cached_property
  def members(self) -> dict[str, knobs.Knob]:
    if self.modality == "video":
      return {"resolution": knobs.resolution(), "frame_rate": knobs.frame_rate(source_fps=10.0),
              "qp": knobs.quantization()}
    return {"audio": streams.audio_members, "lidar": streams.lidar_members}[self.modality]()

  @functools.cached_property
  def picked(self) -> tuple[int, ...]:
    return tuple(int(i) for i in np.linspace(self.frames - 1, 0, self.grad_frames,
                                             endpoint=False)[::-1].round())

  def _shown(self, setting, raw):
    """What the model sees of a segment: the knobs' output (video: on the picked frames)."""
    shown = self.knob.apply(setting, raw)
    return shown[..., self.picked, :, :, :] if self.modality == "video" else shown

  @functools.cached_property
  def optimiser(self) -> optax.GradientTransformation:
    optimiser = optax.adam(self.learning_rate, b1=self.betas[0], b2=self.betas[1])
    if not self.in_rungs:
      return optimiser
    rung = {name: 1.0 / (len(k.values) - 1) for name, k in self.members.items()}
    return optax.chain(optimiser, optax.stateless(
        lambda updates, params=None: {n: u * rung[n] for n, u in updates.items()}))

  def init(self, start: float) -> tuple[dict, optax.OptState]:
    if not 0.0 <= start <= 1.0:
      raise ValueError(f"start must be a setting in [0, 1], got {start}")
    setting = jax.tree.map(lambda s: jnp.full_like(s, start), self.knob.init())
    return setting, self.optimiser.init(setting)

  def config(self, setting) -> Config:
    """The discrete configuration a setting rounds up to, at the rungs' exact values
    (interpolating in float32 would hand x264 QP 22.0000019)."""
    def rung(name):
      knob = self.members[name]
      return float(knob.values[knobs.ladder_index(len(knob.values), knob.round(setting[name]))])
    if self.modality == "video":
      return Config(rung("resolution"), rung("qp"), rung("frame_rate"))
    return streams.CONFIGS[self.modality](**{name: rung(name) for name in self.members})

  def record(self, segment: int, config: Config, outcome, lam: float) -> Record:
    """The record of one segment: AccGrad's backward passes on every segment, and the
    normalising forward pass at the best quality on the first."""
    costs = dict(backward_passes=self.grad_frames, lam=lam,
                 profiling_frames=self.grad_frames if segment == 0 else 0)
    if self.modality == "video":
      return Record.of("oneadapt", segment, config, outcome, **costs)
    return streams.StreamRecord("oneadapt", segment, self.modality, dict(config._asdict()),
                                outcome.accuracy, outcome.bytes, outcome.frames_sent, **costs)

  def gradients(self, graphdef, state, proxy, setting, raw):
    """`(proxy, AccGrad, bytes, d bytes / d setting)`: AccGrad from one `jax.vjp` through the
    chain, the model (on the `grad_frames` picked frames) and the proxy."""
    def objective(s):
      return proxy(nnx.merge(graphdef, state)(self._shown(s, raw)))
    value, grad = jax.value_and_grad(objective)(setting)
    cost, grad_cost = jax.value_and_grad(self.knob.cost)(setting, raw)
    return value, grad, cost, grad_cost

  def reference(self, graphdef, state, proxy, raw):
    """Proxy and bytes at the best quality: what the objective is normalised by."""
    best = self.knob.init()
    return proxy(nnx.merge(graphdef, state)(self._shown(best, raw))), self.knob.cost(best, raw)

  def step(self, setting, opt_state, grad_proxy, grad_cost, proxy_ref, cost_ref, lam):
    """One Adam step on `-proxy / proxy_ref + lam * cost / cost_ref`, kept in `[0, 1]`."""
    # Ascent on the proxy, descent on the cost: the one place the sign convention lives.
    loss_grad = jax.tree.map(lambda ga, gc: -ga / proxy_ref + lam * gc / cost_ref,
                             grad_proxy, grad_cost)
    # optax's Adam raises b1 to an int32 step count, which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = self.optimiser.update(loss_grad, opt_state, setting)
      setting = optax.apply_updates(setting, updates)
    return jax.tree.map(lambda v: jnp.clip(v, 0.0, 1.0), setting), opt_state


@functools.lru_cache(maxsize=None)
def _jitted(controller: Controller, graphdef, proxy):
  """The controller's functions compiled once per (controller, model structure, proxy), so that
  every lambda of a sweep reuses them."""
  return (jax.jit(functools.partial(controller.gradients, graphdef, proxy=proxy)),
          jax.jit(functools.partial(controller.reference, graphdef, proxy=proxy)),
          jax.jit(controller.step))


def oneadapt(workload: Workload, tradeoff: Tradeoff, *, learning_rate: float = 1.0,
             betas: tuple[float, float] = (0.5, 0.5), dual_step: float = 0.25,
             initial_lam: float = 0.0, grad_frames: int | None = 2, start: float = 0.5,
             in_rungs: bool = True) -> list[Record]:
  """The OneAdapt controller over resolution, frame rate and QP (see the module docstring).

  Args:
    workload, tradeoff: what to adapt on and the lambda or budget.
    learning_rate, betas: Adam's; with `in_rungs`, the learning rate counts rungs of each
      knob's ladder (1.0 moves up to one rung per segment), as the paper's optimiser moves in
      its discrete configuration index; otherwise it counts the `[0, 1]` setting.
    dual_step: dual ascent's step on `log(bytes / budget)` (budget only).
    initial_lam: lambda on the first segment (budget only).
    grad_frames: frames of each segment the backward pass runs on, evenly spaced (`None`: all).
    start: the setting of every knob on the first segment (0.5: the middle rung of every
      ladder; 1.0: the best quality).

  The first segment also runs the model forward on its `grad_frames` frames at the best
  quality, for the normalisation; that inference is charged as profiling.
  """
  frames = workload.frames_per_segment
  controller = Controller(frames, frames if grad_frames is None else min(grad_frames, frames),
                          learning_rate, tuple(betas), in_rungs, workload.modality)
  graphdef, model_state = nnx.split(workload.model)
  gradients, reference, step = _jitted(controller, graphdef, workload.spec.proxy)
  setting, opt_state = controller.init(start)
  lam = tradeoff.lam if tradeoff.lam is not None else initial_lam
  refs = None
  records = []
  for i in range(len(workload.segments)):
    config = controller.config(setting)
    outcome = workload.evaluate(i, config)
    raw = workload.raw(i)
    if refs is None:
      refs = tuple(jnp.maximum(r, 1e-6) for r in reference(model_state, raw=raw))
    records.append(controller.record(i, config, outcome, lam))
    _, grad, _, grad_cost = gradients(model_state, setting=setting, raw=raw)
    if tradeoff.budget is not None:
      spent = outcome.bytes / (tradeoff.budget * workload.seconds_per_segment)
      lam = max(0.0, lam + dual_step * float(np.log(spent)))
    setting, opt_state = step(setting, opt_state, grad, grad_cost, *refs, jnp.float32(lam))
  return records


METHODS: dict[str, Callable] = {
    "oneadapt": oneadapt,
    "awstream": baselines.awstream,
    "chameleon": baselines.chameleon,
    "reducto": baselines.reducto,
    "oracle": baselines.oracle,
}
BASELINES = ("awstream", "chameleon", "reducto")


def summarise(records: Sequence[Record], workload: Workload, tradeoff: Tradeoff | None) -> dict:
  """Totals over the segments: mean accuracy, real bytes (also relative to the best-quality
  configuration's), and every cost counted in frames."""
  best = sum(workload.best_bytes(r.segment) for r in records)
  total_bytes = sum(r.bytes for r in records)
  accuracy = float(np.mean([r.accuracy for r in records]))
  seconds = len(records) * workload.seconds_per_segment
  total = {"accuracy": accuracy, "bytes": total_bytes, "relative_bytes": total_bytes / best,
           "bytes_per_second": total_bytes / seconds,
           "dnn_frames": sum(r.dnn_frames for r in records),
           "backward_passes": sum(r.backward_passes for r in records),
           "profiling_frames": sum(r.profiling_frames for r in records),
           "camera_encodes": sum(r.camera_encodes for r in records)}
  if tradeoff is not None and tradeoff.lam is not None:
    total["utility"] = utility(accuracy, total_bytes, best, tradeoff.lam)
  return total


def compare(runs: Sequence[dict], *, tolerance: float = 0.02) -> list[dict]:
  """OneAdapt against each baseline run, on the trade-off curve OneAdapt traces over the sweep.

  At matched accuracy: the least bandwidth (and GPU frames) of a OneAdapt run whose accuracy is
  within `tolerance` of the baseline's, as a fraction of the baseline's. At matched bandwidth: the
  accuracy of the most accurate OneAdapt run that sends no more bytes, minus the baseline's.
  `None` where no OneAdapt run qualifies.
  """
  ours = [r["total"] for r in runs if r["method"] == "oneadapt"]
  rows = []
  for run in runs:
    if run["method"] not in BASELINES:
      continue
    theirs = run["total"]
    at_accuracy = [t for t in ours if t["accuracy"] >= theirs["accuracy"] - tolerance]
    at_bandwidth = [t for t in ours if t["bytes"] <= theirs["bytes"]]
    cheapest = min(at_accuracy, key=lambda t: t["bytes"], default=None)
    gpu = min(at_accuracy, key=lambda t: t["dnn_frames"] + t["profiling_frames"], default=None)
    row = {"baseline": run["method"], "lambda": run.get("lambda"), "budget": run.get("budget"),
           "baseline_accuracy": theirs["accuracy"], "baseline_bytes": theirs["bytes"],
           "bytes_ratio_at_matched_accuracy":
               None if cheapest is None else cheapest["bytes"] / theirs["bytes"],
           "gpu_frames_ratio_at_matched_accuracy":
               None if gpu is None else (gpu["dnn_frames"] + gpu["profiling_frames"])
               / (theirs["dnn_frames"] + theirs["profiling_frames"]),
           "accuracy_gain_at_matched_bytes":
               None if not at_bandwidth else max(t["accuracy"] for t in at_bandwidth)
               - theirs["accuracy"]}
    rows.append(row)
  return rows


def versus_static(runs: Sequence[dict], static: Sequence[dict], *, tolerance: float = 0.02
                  ) -> list[dict]:
  """Each OneAdapt run against the static configurations, i.e. the best fixed configuration in
  hindsight (which only a profile of the whole clip could pick): the most accurate one that sends
  no more bytes, and the cheapest one within `tolerance` of OneAdapt's accuracy."""
  rows = []
  for run in runs:
    if run["method"] != "oneadapt":
      continue
    ours = run["total"]
    cheaper = [s["total"] for s in static if s["total"]["bytes"] <= ours["bytes"]]
    as_good = [s["total"] for s in static if s["total"]["accuracy"] >= ours["accuracy"] - tolerance]
    rows.append({"lambda": run["lambda"], "budget": run["budget"], "accuracy": ours["accuracy"],
                 "bytes": ours["bytes"],
                 "best_static_accuracy_at_these_bytes":
                     max((t["accuracy"] for t in cheaper), default=None),
                 "least_static_bytes_at_this_accuracy":
                     min((t["bytes"] for t in as_good), default=None)})
  return rows


def _tradeoff_fields(tradeoff: Tradeoff | None) -> dict:
  return {"lambda": None if tradeoff is None else tradeoff.lam,
          "budget": None if tradeoff is None else tradeoff.budget}


VIDEO_ONLY = ("reducto",)  # Reducto's frame filter has no audio or LiDAR counterpart here


def run(out_dir: pathlib.Path, *, task: str = "detection", clip: str = "carphone",
        lambdas: Sequence[float] = (0.1, 0.3, 1.0), budgets: Sequence[float] = (),
        methods: Sequence[str] = tuple(METHODS), static: bool = True,
        max_segments: int | None = None, progress: bool = True, verbose: bool = True,
        modality: str = "video", proxy: str | None = None) -> dict:
  """Runs every method at every trade-off (each lambda, each budget in bytes/s) and, with
  `static`, every grid configuration held fixed; writes `results.json` into `out_dir`.

  `modality`: `"video"` (`task` on `clip`), or `"audio"` / `"lidar"`, whose task and stream
  are fixed (`oneadapt_jax.streams`; `task` and `clip` are then ignored).
  `proxy`: the name of another proxy of the video task for OneAdapt to ascend (e.g.
  `"expected_f1"`); the default is the task's own.

  Resumable: each finished (method, trade-off) unit is appended to `records.jsonl` as it ends
  and skipped on a rerun, so an interrupted sweep loses at most the unit in flight.
  """
  unknown = set(methods) - set(METHODS)
  if unknown:
    raise ValueError(f"unknown methods {sorted(unknown)}; available: {sorted(METHODS)}")
  if modality != "video":
    if modality not in streams.MODALITIES:
      raise ValueError(f"unknown modality {modality!r}; available: video, "
                       f"{', '.join(streams.MODALITIES)}")
    if set(methods) & set(VIDEO_ONLY):
      raise ValueError(f"{sorted(set(methods) & set(VIDEO_ONLY))} work on video only")
    if proxy is not None:
      raise ValueError(f"the {modality} workload has one proxy; --proxy is for video tasks")
  tradeoffs = [Tradeoff(lam=float(v)) for v in lambdas] + [Tradeoff(budget=float(b)) for b in budgets]
  if not tradeoffs:
    raise ValueError("give at least one lambda or budget")
  if modality == "video":
    workload = Workload.build(task, clip, max_segments=max_segments, proxy=proxy)
    record_type = Record
  else:
    workload = streams.StreamWorkload.build(modality, max_segments=max_segments)
    record_type, task, clip = streams.StreamRecord, workload.task, workload.clip
  out_dir.mkdir(parents=True, exist_ok=True)
  log = out_dir / "records.jsonl"
  done: dict[tuple, list[Record]] = {}
  if log.exists():
    for line in log.read_text().splitlines():
      try:
        entry = json.loads(line)
      except json.JSONDecodeError:  # the line being written when a run was killed
        continue
      # Only OneAdapt ascends the proxy: the baselines' records serve any proxy.
      same_proxy = entry["method"] != "oneadapt" or entry.get("proxy") == proxy
      if entry.get("task") == task and entry.get("clip") == clip and same_proxy:
        done[(entry["method"], entry["unit"])] = [record_type(**r) for r in entry["records"]]
  jobs = [(m, t.label, lambda w, m=m, t=t: METHODS[m](w, t)) for t in tradeoffs for m in methods]
  if static:
    jobs += [("static", repr(tuple(c)), lambda w, c=c: baselines.static(w, c))
             for c in workload.grid()]
  for method, unit, job in tqdm(jobs, desc=f"{task} on {clip}", disable=not progress):
    if (method, unit) in done:
      continue
    records = job(workload)
    done[(method, unit)] = records
    with log.open("a") as f:  # one line per finished unit: an interruption loses nothing
      f.write(json.dumps({"task": task, "clip": clip, "proxy": proxy, "method": method,
                          "unit": unit, "records": [dataclasses.asdict(r) for r in records]}) + "\n")
  by_label = {t.label: t for t in tradeoffs}
  results = {"modality": modality, "task": task, "clip": clip, "proxy": proxy or "default",
             "segments": len(workload.segments),
             "frames_per_segment": workload.frames_per_segment,
             "device": str(jax.devices()[0]), "runs": [], "static": []}
  for (method, unit), records in done.items():
    if method == "static":
      if static:
        results["static"].append({"config": records[0].config._asdict(),
                                  "total": summarise(records, workload, None)})
      continue
    if unit not in by_label or method not in methods:
      continue  # kept in the log, not asked for this time
    tradeoff = by_label[unit]
    results["runs"].append({"method": method, **_tradeoff_fields(tradeoff),
                            "total": summarise(records, workload, tradeoff),
                            "per_segment": [dataclasses.asdict(r) for r in records]})
  results["runs"].sort(key=lambda r: (list(METHODS).index(r["method"]), r["lambda"] or 0,
                                      r["budget"] or 0))
  results["comparison"] = compare(results["runs"])
  results["versus_static"] = versus_static(results["runs"], results["static"])
  (out_dir / "results.json").write_text(json.dumps(results, indent=2))
  if verbose:
    print(table(results))
  return results


def table(results: dict) -> str:
  """The runs of a `results.json` as a text table."""
  lines = [f"{results['task']} on {results['clip']} ({results['segments']} segments, "
           f"{results['device']})",
           f"{'method':<10}{'trade-off':>16}{'accuracy':>10}{'rel. bytes':>12}{'dnn':>6}"
           f"{'bwd':>6}{'profiling':>11}"]
  for entry in results["runs"]:
    t = entry["total"]
    label = (f"lambda={entry['lambda']:g}" if entry["lambda"] is not None
             else f"{entry['budget']:g} B/s")
    lines.append(f"{entry['method']:<10}{label:>16}{t['accuracy']:>10.3f}"
                 f"{t['relative_bytes']:>12.3f}{t['dnn_frames']:>6}{t['backward_passes']:>6}"
                 f"{t['profiling_frames']:>11}")
  return "\n".join(lines)
