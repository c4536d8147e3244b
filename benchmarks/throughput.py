"""What one OneAdapt step costs against the inference it adapts, from 176x144 to 1080p.

For each clip and segment length: the jitted model (BlazeFace, square tiles for wide frames) on
every frame of the segment, as the server infers it at full rate, against the controller's
step as the loop runs it (the default `decoded` estimator):

- the server's backward pass on the last decoded frame (its forward pass is inference's: the
  model's value-and-gradient on that frame less its forward pass);
- the camera's step: one pass through the knob chain (resolution -> frame rate -> quantization
  and its byte estimate) at the raw frames, pulled back once with the objective's cotangent,
  then Adam (`Bound.camera_step`);
- beside it, `camera then step`: the chain's output and its bytes differentiated apart, then
  Adam, what the loop ran before (the same numbers, `tests/test_server_grad.py`).

1920x1080 is Big Buck Bunny's 720p upscaled (Lanczos): no bundled clip is 1080p, and the cost
depends on the frame size, not the content. After compilation, inference, the server's pass and
the camera's step are timed once each, in turn, `--repeats` times: one repeat's step and
inference are timed within seconds of each other, so their ratio sees the machine in one state,
and the ratio reported is the median of the repeats' ratios (each one's is in the JSON). Timed
in blocks, one after the other, a drift of the machine's speed between them went into the ratio.

    python benchmarks/throughput.py [--repeats 5] [--lengths 10] [--out DIR] [--stages]
                                    [--ycbcr420] [--fft-threads] [--trace DIR]
                                    [--compare REV [--rounds 3]]

Prints a table with the machine and writes `throughput.json`. `--stages` adds where the camera's
time goes: each stage of the chain jitted alone, forward and forward-and-backward (`vjp` pulled
back once), on what it sees in the chain (`stages.json`). `--fft-threads` times XLA's FFT on
the segment's planes alone and right after an elementwise operation, with the process's CPU
time over wall time (`fft_threads.json`): on jaxlib 0.10.1 the second runs on one core.
`--ycbcr420` adds, after each size's row, one with the chain passing 4:2:0 planes between its
knobs (`VideoWorkload.ycbcr420`: the chroma filtered at the size it is coded; not the default,
its clip moves the controller's choices on vtest), where the frames are whole 16x16 macroblocks
(not 1080p: elsewhere that chain runs RGB). `--trace DIR` writes a `jax.profiler` trace of one
camera step per size (open it in Perfetto or TensorBoard's profile plugin): its fused XLA ops
name the JAX operations they came from.

`--compare REV` weighs a change against the code at git revision `REV` on this machine's drift
(its speed moves 20% and more within an hour): a fresh process of this script for each side, in
turn, `--rounds` times, the other side's packages first on `PYTHONPATH` (a temporary
`git worktree`, removed after; `REV` needs `Bound.camera_step`, 84f0b8a and later). It prints
each round's step / inference of both sides and their medians, and writes `compare.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from _common import interleaved_times, machine, median_time  # benchmarks/: a script folder
from PIL import Image
from tqdm.auto import tqdm

import knobs
from oneadapt_jax import data
from oneadapt_jax.core import Controller
from oneadapt_jax.workloads.video import VideoWorkload, build

SIZES = {"carphone": ("carphone", None), "bikes": ("bikes", None),
         "720p": ("bigbuckbunny", None), "1080p": ("bigbuckbunny", (1920, 1080))}


def _workload(name: str, length: int) -> VideoWorkload:
  clip, size = SIZES[name]
  workload = build(task="detection", source=clip, max_segments=2)
  frames = np.concatenate([s.frames for s in workload.segments])[:length]
  if size is not None:
    frames = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS))
                       for f in frames])
  segment = data.Segment(frames, clip, 0, workload.source_fps)
  return VideoWorkload("detection", clip, [segment], workload.model)


def measure(workload: VideoWorkload, repeats: int, trace: pathlib.Path | None = None) -> dict:
  bound = Controller().bind(workload)
  raw = workload.raw(0)
  last = raw[-1:]
  setting, opt_state = bound.init(0.5)
  refs = (jnp.float32(1.0), jnp.float32(1.0))
  lam = jnp.float32(0.3)
  infer = jax.jit(lambda x: workload.model(x))
  value_and_grad = jax.jit(jax.value_and_grad(lambda x: workload.proxy(workload.model(x))))
  cotangent = value_and_grad(last)[1]
  jitted = bound.jitted

  def apart():
    grad, _, grad_cost = jitted.camera(setting, raw, cotangent)
    return jitted.step(setting, opt_state, grad, grad_cost, *refs, lam)

  with jax.numpy_dtype_promotion("standard"):
    times = interleaved_times({
        "infer": lambda: infer(raw), "forward_last": lambda: infer(last),
        "value_and_grad": lambda: value_and_grad(last),
        "camera": lambda: jitted.camera_step(setting, opt_state, raw, cotangent, *refs, lam),
        "apart": apart}, repeats)
    if trace is not None:
      with jax.profiler.trace(str(trace)):
        jax.block_until_ready(
            jitted.camera_step(setting, opt_state, raw, cotangent, *refs, lam))
  # The server's backward pass alone: its forward pass is inference's.
  server = [max(g - f, 0.0) for g, f in zip(times["value_and_grad"], times["forward_last"])]
  steps = [s + c for s, c in zip(server, times["camera"])]
  ratios = [step / i for step, i in zip(steps, times["infer"])]
  apart_ratios = [(s + a) / i for s, a, i in zip(server, times["apart"], times["infer"])]
  median = statistics.median
  return {"size": list(raw.shape[1:3]), "frames": int(raw.shape[0]),
          "inference_s": median(times["infer"]), "server_backward_s": median(server),
          "camera_step_s": median(times["camera"]), "camera_apart_s": median(times["apart"]),
          "step_s": median(steps),
          "step_over_inference": median(ratios), "step_over_inference_each": ratios,
          "camera_apart_over_inference": median(apart_ratios)}


def stages(workload: VideoWorkload, repeats: int) -> list[dict]:
  """Each stage of the encoding chain alone at the middle rung: its forward pass and its `vjp`
  in the stage's setting (the frames are arguments, so XLA cannot fold them into constants).
  Each stage sees what it sees in the camera's step: the segment channels first, as the chain
  runs it (`VideoWorkload._shown_and_held`), not the decoder's channels-last frames, which
  each stage would move in front of the plane and back (a pass each way, forward and
  backward)."""
  bound = Controller().bind(workload)
  raw = jnp.moveaxis(workload.raw(0), -1, -3)
  setting, _ = bound.init(0.5)
  members = workload._members  # the chain's knobs by name, as the workload runs them

  def first(fn):
    return lambda s, frames: fn(s, frames, channel_axis=-3)

  resolution, frame_rate = first(members["resolution"].apply), first(members["frame_rate"].apply)
  held = frame_rate(setting["frame_rate"], resolution(setting["resolution"], raw))
  planes = isinstance(held, knobs.YCbCr420)
  picked = jax.tree.map(lambda x: x[..., bound.picked, :, :, :], held)
  # The chain's quantization takes planes and returns the decoder's RGB channels last; RGB it
  # codes channels first.
  quantize = (functools.partial(members["qp"].apply, channel_axis=-1) if planes
              else first(members["qp"].apply))
  cases = [("resolution" + (", to 4:2:0 planes" if planes else ""), "resolution", resolution,
            raw),
           ("frame rate", "frame_rate", frame_rate, held),
           ("quantization, picked frame", "qp", quantize, picked),
           ("quantization's bytes, every frame", "qp", first(members["qp"].cost), held)]
  rows = []
  for name, knob, fn, frames in cases:
    s = setting[knob]
    forward = jax.jit(fn)

    def pulled(s, frames, fn=fn):
      out, pullback = jax.vjp(lambda s: fn(s, frames), s)
      return pullback(jax.tree.map(jnp.ones_like, out))

    backward = jax.jit(pulled)
    with jax.numpy_dtype_promotion("standard"):
      rows.append({"stage": name, "frames": int(jax.tree.leaves(frames)[0].shape[0]),
                   "forward_s": median_time(lambda: forward(s, frames), repeats),
                   "vjp_s": median_time(lambda: backward(s, frames), repeats)})
  return rows


def _passes_planes(workload: VideoWorkload) -> bool:
  """Whether the workload's chain hands 4:2:0 planes between its knobs (`knob_chain`: asked
  for, and frames in whole macroblocks)."""
  out = jax.eval_shape(workload._members["resolution"].apply, jnp.float32(1.0), workload.raw(0))
  return isinstance(out, knobs.YCbCr420)


def fft_threads(workload: VideoWorkload, repeats: int) -> list[dict]:
  """XLA's CPU FFT on the segment's planes (`[T, C, H, W]`, along `W`, as the resolution
  filter runs it), alone and right after an elementwise operation: wall time and the process's
  CPU time over wall time (2 where both cores work). jaxlib 0.10.1's FFT falls to one thread
  after another operation (openxla/xla#46345), and in the knob every transform follows one."""
  planes = jnp.moveaxis(workload.raw(0), -1, -3)
  n = planes.shape[-1]
  rfft = jax.jit(lambda x: jnp.fft.rfft(x, axis=-1))
  spectrum = rfft(planes)
  cases = [("rfft alone", rfft, planes),
           ("rfft after x * 2", jax.jit(lambda x: jnp.fft.rfft(x * 2.0, axis=-1)), planes),
           ("irfft alone", jax.jit(lambda z: jnp.fft.irfft(z, n=n, axis=-1)), spectrum),
           ("irfft after z * 2", jax.jit(lambda z: jnp.fft.irfft(z * 2.0, n=n, axis=-1)),
            spectrum)]
  rows = []
  for name, fn, x in cases:
    cpu = []  # the process's CPU seconds of each call, the warm-up's first

    def call(fn=fn, x=x, cpu=cpu):
      before = _cpu_seconds()
      out = jax.block_until_ready(fn(x))
      cpu.append(_cpu_seconds() - before)
      return out

    walls = interleaved_times({name: call}, repeats)[name]
    rows.append({"case": name, "wall_s": statistics.median(walls),
                 "cpu_over_wall": statistics.median(c / w for c, w in zip(cpu[1:], walls))})
  return rows


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
  return usage.ru_utime + usage.ru_stime


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
  parser.add_argument("--lengths", type=int, nargs="+", default=[10])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  parser.add_argument("--stages", action="store_true",
                      help="also time each stage of the chain alone, forward and vjp")
  parser.add_argument("--fft-threads", action="store_true",
                      help="also time XLA's FFT on each size's planes, alone and after an "
                           "elementwise operation, with the CPU time over wall time")
  parser.add_argument("--trace", type=pathlib.Path, default=None,
                      help="write a jax.profiler trace of one camera step per size under DIR/SIZE")
  parser.add_argument("--ycbcr420", action="store_true",
                      help="also time each size with the chain passing 4:2:0 planes between its "
                           "knobs (VideoWorkload.ycbcr420), right after the default chain")
  parser.add_argument("--compare", metavar="REV", default=None,
                      help="time this tree against git revision REV, in alternate processes")
  parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare (default 3)")
  args = parser.parse_args(argv)
  if args.compare is not None:
    return compare(args)
  rows, by_size, ffts, skipped = [], {}, {}, set()
  for name in tqdm(args.sizes, desc="throughput"):
    for length in args.lengths:
      workload = _workload(name, length)
      trace = None if args.trace is None else args.trace / f"{name}-{length}"
      rows.append({"clip": name, "chain": "rgb", **measure(workload, args.repeats, trace)})
      if args.stages and length == max(args.lengths):
        by_size[name] = stages(workload, args.repeats)
      # The same frames and references: only the chain differs.
      planes = dataclasses.replace(workload, ycbcr420=True) if args.ycbcr420 else None
      if planes is not None and not _passes_planes(planes):
        skipped.add(name)  # its chain runs RGB: the same measure again
      elif planes is not None:
        rows.append({"clip": name, "chain": "4:2:0", **measure(planes, args.repeats)})
        if args.stages and length == max(args.lengths):
          by_size[f"{name} 4:2:0"] = stages(planes, args.repeats)
      if args.fft_threads and length == max(args.lengths):
        ffts[name] = fft_threads(workload, args.repeats)
  print(f"throughput of the controller's step (decoded AccGrad, BlazeFace); {machine()}")
  print(f"{'clip':<10}{'size':>10}{'chain':>6}{'frames':>7}{'infer s':>9}{'server s':>9}"
        f"{'camera s':>9}{'step/infer':>11}{'apart/infer':>12}  step/infer by repeat")
  for r in rows:
    size = "x".join(map(str, r["size"][::-1]))
    print(f"{r['clip']:<10}{size:>10}{r['chain']:>6}{r['frames']:>7}{r['inference_s']:>9.3f}"
          f"{r['server_backward_s']:>9.3f}{r['camera_step_s']:>9.3f}"
          f"{r['step_over_inference']:>11.2f}{r['camera_apart_over_inference']:>12.2f}  "
          + " ".join(f"{x:.2f}" for x in r["step_over_inference_each"]))
  for name in skipped:
    print(f"{name}: no 4:2:0 row, its frames are not whole 16x16 macroblocks (the chain runs RGB)")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "throughput.json").write_text(json.dumps(
      {"machine": machine(), "model": "blazeface", "repeats": args.repeats, "code": _code(),
       "rows": rows},
      indent=2))
  if args.stages:
    _per_size_table(
        args.out / "stages.json", "where the camera's time goes, each stage jitted alone (s)",
        f"{'stage':<36}{'frames':>7}{'forward':>9}{'vjp':>9}", by_size, args.repeats,
        lambda r: f"{r['stage']:<36}{r['frames']:>7}{r['forward_s']:>9.3f}{r['vjp_s']:>9.3f}")
  if args.fft_threads:
    _per_size_table(
        args.out / "fft_threads.json",
        "XLA's FFT along the rows of each size's planes, alone and after an elementwise operation",
        f"{'case':<22}{'wall ms':>9}{'cpu/wall':>10}", ffts, args.repeats,
        lambda r: f"{r['case']:<22}{r['wall_s'] * 1e3:>9.1f}{r['cpu_over_wall']:>10.2f}")
  return rows


def _per_size_table(path: pathlib.Path, title: str, header: str, by_size: dict, repeats: int,
                    line) -> None:
  """Prints rows kept per size (`line` formats one) under `title` and the machine, and writes
  them to `path` as JSON."""
  print(f"{title}; {machine()}")
  print(f"{'clip':<16}{header}")
  for name, rows in by_size.items():
    for r in rows:
      print(f"{name:<16}{line(r)}")
  path.write_text(json.dumps({"machine": machine(), "repeats": repeats, "sizes": by_size},
                             indent=2))


def _code() -> str:
  """The tree whose packages this process runs (`--compare` puts another first)."""
  return str(pathlib.Path(data.__file__).resolve().parent.parent)


def compare(args) -> list[dict]:
  """`--compare REV`: this script in fresh processes, alternating the code at `REV` and this
  tree, `args.rounds` times; each side's step / inference per round and the medians."""
  if args.rounds < 1:
    raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
  if args.stages or args.fft_threads or args.ycbcr420 or args.trace is not None:
    raise SystemExit("--compare times the step alone; run --stages, --fft-threads, --ycbcr420 "
                     "or --trace without it")
  root = pathlib.Path(__file__).resolve().parent.parent
  with tempfile.TemporaryDirectory(prefix="throughput-compare-") as tmp:
    tree = pathlib.Path(tmp) / "tree"
    added = subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree),
                            args.compare], capture_output=True, text=True, check=False)
    if added.returncode != 0:
      raise SystemExit(f"--compare: no worktree at {args.compare!r}: {added.stderr.strip()}")
    sides = {args.compare: tree, "this tree": root}
    runs = []
    try:
      for index in tqdm(range(args.rounds), desc="rounds"):
        for label, path in sides.items():
          out = pathlib.Path(tmp) / f"round{index}-{'rev' if path == tree else 'this'}"
          env = {**os.environ, "PYTHONPATH": os.pathsep.join(
              [str(path), *filter(None, [os.environ.get("PYTHONPATH")])])}
          command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--sizes",
                     *args.sizes, "--lengths", *map(str, args.lengths), "--repeats",
                     str(args.repeats), "--out", str(out)]
          subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
          written = json.loads((out / "throughput.json").read_text())
          runs += [{"round": index, "side": label, "code": written["code"], **row}
                   for row in written["rows"]]
    finally:
      subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                     capture_output=True, check=False)
  print(f"step / inference, {args.compare} against this tree, {args.rounds} rounds in "
        f"alternate processes; {machine()}")
  print(f"{'clip':<10}{'frames':>7}{'side':>14}{'median':>8}  each round")
  keys = dict.fromkeys((r["clip"], r["frames"]) for r in runs)
  for clip, frames in keys:
    for label in sides:
      ratios = [r["step_over_inference"] for r in runs
                if (r["clip"], r["frames"], r["side"]) == (clip, frames, label)]
      print(f"{clip:<10}{frames:>7}{label:>14}{statistics.median(ratios):>8.2f}  "
            + " ".join(f"{x:.2f}" for x in ratios))
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "compare.json").write_text(json.dumps(
      {"machine": machine(), "revision": args.compare, "rounds": args.rounds,
       "repeats": args.repeats, "runs": runs}, indent=2))
  return runs


if __name__ == "__main__":
  main()
