"""The OneAdapt controller and the baselines it is measured against, on real encodes.

Every method is charged its real costs. Per segment and method the record holds: accuracy (the
task metric against the model's output on the raw frames), real x264 bytes, DNN forward frames,
backward passes, profiling frames (inference spent on configurations not sent) and the
configuration chosen.

Utility, for choosing and comparing: `accuracy - lambda * bytes / bytes_best`, where
`bytes_best` is the segment's size at the best-quality configuration (the paper's normalisation).

- `oneadapt`: per segment, encode at the rounded setting, run the model on what was decoded,
  then one AccGrad (fused `jax.vjp`) and the surrogate's byte gradient give one Adam step (betas
  0.5, 0.5 and learning rate 0.5, as in the paper's batch runs) on
  `-proxy / proxy_ref + lambda * cost / cost_ref`; the
  setting is kept in `[0, 1]` and rounded up to the ladder for the next segment.
- `static`: one configuration held throughout.
- `awstream`: profiles the whole resolution x QP grid on the first segment, keeps the Pareto
  frontier, and holds the frontier point of best utility.
- `oracle`: the best configuration of each segment by exhaustive search (an upper bound).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import knobs
import models
from oneadapt_jax import accgrad, codec, data, metrics, proxy_check


@dataclasses.dataclass
class Record:
  method: str
  segment: int
  resolution: float
  qp: float
  accuracy: float
  bytes: int
  dnn_frames: int
  backward_passes: int = 0
  profiling_frames: int = 0


@dataclasses.dataclass
class Workload:
  """A task on a clip: the model, its proxy and metric, and the segments with references."""

  task: str
  clip: str
  segments: list
  model: object
  references: list
  preset: str = "veryfast"
  resolution_values: tuple = tuple(knobs.resolution().values)
  qp_values: tuple = tuple(knobs.quantization().values)
  # (segment, resolution, qp) -> (accuracy, bytes): the baselines, the summary and the
  # controller ask for the same configurations, and each answer costs an inference pass.
  _evaluated: dict = dataclasses.field(default_factory=dict, repr=False)

  @classmethod
  def build(cls, task: str, clip: str, *, max_segments: int | None = None,
            preset: str = "veryfast") -> "Workload":
    spec = proxy_check.TASKS[task]
    model = models.load(spec.model)
    segments = data.clip_segments(clip)[:max_segments]
    workload = cls(task, clip, segments, model, [], preset)
    workload.references = [workload.post(workload.run(s.as_float())) for s in segments]
    return workload

  @property
  def spec(self):
    return proxy_check.TASKS[self.task]

  @functools.cached_property
  def _jitted(self):
    return jax.jit(lambda x: self.model(x))

  def run(self, frames):
    return self._jitted(jnp.asarray(frames))

  def post(self, outputs):
    return proxy_check.per_frame(self.spec, self.model, outputs, self.segments[0].size)

  def evaluate(self, index: int, resolution: float, qp: float) -> tuple[float, int]:
    """Real accuracy and bytes of one segment at one configuration (computed once)."""
    key = (index, resolution, qp)
    if key not in self._evaluated:
      segment = self.segments[index]
      encoded = codec.encode(segment.frames, resolution=resolution, qp=qp, preset=self.preset)
      accuracy = metrics.segment_mean(self.spec.metric, self.post(self.run(encoded.as_float())),
                                      self.references[index])
      self._evaluated[key] = (accuracy, encoded.num_bytes)
    return self._evaluated[key]

  def best_bytes(self, index: int) -> int:
    return self.evaluate(index, 1.0, float(min(self.qp_values)))[1]


def utility(accuracy: float, num_bytes: float, best_bytes: float, lam: float) -> float:
  return accuracy - lam * num_bytes / best_bytes


def grid(workload: Workload, qp_stride: int = 3) -> list[tuple[float, float]]:
  """The joint discrete configurations the profiling baselines search."""
  qps = workload.qp_values[::qp_stride]
  return [(float(r), float(q)) for r, q in itertools.product(workload.resolution_values, qps)]


def static(workload: Workload, resolution: float, qp: float) -> list[Record]:
  frames = len(workload.segments[0].frames)
  return [Record("static", i, resolution, qp, *workload.evaluate(i, resolution, qp), frames)
          for i in range(len(workload.segments))]


def oracle(workload: Workload, lam: float) -> list[Record]:
  frames = len(workload.segments[0].frames)
  records = []
  for i in range(len(workload.segments)):
    best = workload.best_bytes(i)
    scored = [(utility(*workload.evaluate(i, r, q), best, lam), r, q) for r, q in grid(workload)]
    _, r, q = max(scored)
    records.append(Record("oracle", i, r, q, *workload.evaluate(i, r, q), frames,
                          profiling_frames=frames * (len(scored) - 1)))
  return records


def pareto(points: Sequence[tuple[float, int, float, float]]) -> list:
  """Points `(accuracy, bytes, resolution, qp)` not beaten on both accuracy and bytes."""
  return [p for p in points
          if not any(o[0] >= p[0] and o[1] <= p[1] and (o[0] > p[0] or o[1] < p[1]) for o in points)]


def awstream(workload: Workload, lam: float, *, profile_segments: int = 1) -> list[Record]:
  frames = len(workload.segments[0].frames)
  configs = grid(workload)
  profile = []
  for r, q in configs:
    scores = [workload.evaluate(i, r, q) for i in range(profile_segments)]
    profile.append((float(np.mean([s[0] for s in scores])), int(np.mean([s[1] for s in scores])),
                    r, q))
  best = float(np.mean([workload.best_bytes(i) for i in range(profile_segments)]))
  frontier = pareto(profile)
  _, _, r, q = max(frontier, key=lambda p: utility(p[0], p[1], best, lam))
  records = []
  for i in range(len(workload.segments)):
    profiling = frames * len(configs) if i < profile_segments else 0
    records.append(Record("awstream", i, r, q, *workload.evaluate(i, r, q), frames,
                          profiling_frames=profiling))
  return records


def oneadapt(workload: Workload, lam: float, *, learning_rate: float = 0.5,
             betas: tuple[float, float] = (0.5, 0.5)) -> list[Record]:
  res_knob, qp_knob = knobs.resolution(), knobs.quantization()
  knob = knobs.chain(resolution=knobs.scale_cost(res_knob, 0.0, unit="bytes"), qp=qp_knob)
  optimiser = optax.adam(learning_rate, b1=betas[0], b2=betas[1])
  setting = knob.init()
  state = optimiser.init(setting)
  cost_grad = jax.jit(jax.value_and_grad(knob.cost))

  @jax.jit
  def step(setting, state, grad_proxy, grad_cost, proxy_ref, cost_ref):
    # Ascent on the proxy, descent on the cost: the one place the sign convention lives.
    loss_grad = jax.tree.map(lambda ga, gc: -ga / proxy_ref + lam * gc / cost_ref,
                             grad_proxy, grad_cost)
    updates, state = optimiser.update(loss_grad, state, setting)
    setting = optax.apply_updates(setting, updates)
    return jax.tree.map(lambda v: jnp.clip(v, 0.0, 1.0), setting), state

  frames_per_segment = len(workload.segments[0].frames)
  proxy_ref = cost_ref = None
  records = []
  for i, segment in enumerate(workload.segments):
    # The rung's exact physical value (interpolating in float32 would hand x264 QP 22.0000019).
    rounded = knob.round(setting)
    r = float(res_knob.values[knobs.ladder_index(len(res_knob.values), rounded["resolution"])])
    q = float(qp_knob.values[knobs.ladder_index(len(qp_knob.values), rounded["qp"])])
    accuracy, num_bytes = workload.evaluate(i, r, q)
    records.append(Record("oneadapt", i, r, q, accuracy, num_bytes, frames_per_segment,
                          backward_passes=frames_per_segment))
    raw = segment.as_float()
    proxy_value, grad = accgrad.acc_grad(knob, workload.model, workload.spec.proxy, setting, raw)
    cost_value, grad_cost = cost_grad(setting, jnp.asarray(raw))
    if proxy_ref is None:
      proxy_ref, cost_ref = max(float(proxy_value), 1e-6), max(float(cost_value), 1e-6)
    # optax's Adam raises b1 to an int32 step count, which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
      setting, state = step(setting, state, grad, grad_cost, jnp.float32(proxy_ref),
                            jnp.float32(cost_ref))
  return records


METHODS: dict[str, Callable] = {"oneadapt": oneadapt, "awstream": awstream, "oracle": oracle}


def summarise(records: Sequence[Record], workload: Workload, lam: float) -> dict:
  best = sum(workload.best_bytes(r.segment) for r in records)
  total_bytes = sum(r.bytes for r in records)
  accuracy = float(np.mean([r.accuracy for r in records]))
  return {"accuracy": accuracy, "bytes": total_bytes, "relative_bytes": total_bytes / best,
          "utility": utility(accuracy, total_bytes, best, lam),
          "dnn_frames": sum(r.dnn_frames for r in records),
          "backward_passes": sum(r.backward_passes for r in records),
          "profiling_frames": sum(r.profiling_frames for r in records)}


def run(out_dir: pathlib.Path, *, task: str = "detection", clip: str = "carphone",
        lambdas: Sequence[float] = (0.1, 0.3, 1.0), methods: Sequence[str] = tuple(METHODS),
        max_segments: int | None = None, progress: bool = True) -> dict:
  """Runs every method at every lambda; resumable: finished (method, lambda) pairs are kept in
  `records.jsonl` and skipped on a rerun. Writes `results.json`."""
  unknown = set(methods) - set(METHODS)
  if unknown:
    raise ValueError(f"unknown methods {sorted(unknown)}; available: {sorted(METHODS)}")
  out_dir.mkdir(parents=True, exist_ok=True)
  log = out_dir / "records.jsonl"
  done: dict[tuple[str, float], list[Record]] = {}
  if log.exists():
    for line in log.read_text().splitlines():
      entry = json.loads(line)
      if entry.get("task") == task and entry.get("clip") == clip:
        done[(entry["method"], entry["lambda"])] = [Record(**r) for r in entry["records"]]
  workload = Workload.build(task, clip, max_segments=max_segments)
  jobs = [(m, lam) for lam in lambdas for m in methods]
  for method, lam in tqdm(jobs, desc=f"{task} on {clip}", disable=not progress):
    if (method, lam) in done:
      continue
    records = METHODS[method](workload, lam)
    done[(method, lam)] = records
    with log.open("a") as f:  # one line per finished unit: an interruption loses nothing
      f.write(json.dumps({"task": task, "clip": clip, "method": method, "lambda": lam,
                          "records": [dataclasses.asdict(r) for r in records]}) + "\n")
  results = {"task": task, "clip": clip, "segments": len(workload.segments),
             "device": str(jax.devices()[0]), "runs": []}
  for (method, lam), records in sorted(done.items()):
    results["runs"].append({"method": method, "lambda": lam,
                            "total": summarise(records, workload, lam),
                            "per_segment": [dataclasses.asdict(r) for r in records]})
  (out_dir / "results.json").write_text(json.dumps(results, indent=2))
  print(f"{'method':<10}{'lambda':>8}{'accuracy':>10}{'rel. bytes':>12}{'utility':>9}"
        f"{'dnn':>6}{'bwd':>6}{'profiling':>11}")
  for entry in results["runs"]:
    t = entry["total"]
    print(f"{entry['method']:<10}{entry['lambda']:>8.2f}{t['accuracy']:>10.3f}"
          f"{t['relative_bytes']:>12.3f}{t['utility']:>9.3f}{t['dnn_frames']:>6}"
          f"{t['backward_passes']:>6}{t['profiling_frames']:>11}")
  return results
