"""Frames per second of plain inference and of one OneAdapt step, at several sizes and lengths.

For each bundled clip (carphone 176x144, bikes 640x272, Big Buck Bunny 1280x720) and segment
length (5, 10, 20 frames): the jitted detection model alone on the segment, and the jitted
adaptation step (fused AccGrad through resolution -> frame rate -> quantization -> BlazeFace ->
proxy, the byte cost's gradient and an Adam update). Medians of `--repeats` after compilation.

    python benchmarks/throughput.py [--repeats 3] [--lengths 5 10 20] [--out DIR]

Prints a table with the machine and writes `throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import machine, median_time  # benchmarks/ runs as a script folder
from flax import nnx

import models
from oneadapt_jax import data, fidelity, proxies


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clips", nargs="+", default=["carphone", "bikes", "bigbuckbunny"])
  parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20])
  parser.add_argument("--model", default="blazeface")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  model = models.load(args.model)
  graphdef, state = nnx.split(model)
  knob = fidelity.surrogate_chain()
  optimiser = optax.adam(0.1, b1=0.5, b2=0.5)

  @jax.jit
  def infer(state, frames):
    return nnx.merge(graphdef, state)(frames)

  @jax.jit
  def adapt_step(state, setting, opt_state, frames):
    def objective(s):
      return proxies.detection(nnx.merge(graphdef, state)(knob.apply(s, frames)))
    value, grad = jax.value_and_grad(objective)(setting)
    grad_cost = jax.grad(knob.cost)(setting, frames)
    loss_grad = jax.tree.map(lambda a, c: -a + 0.3 * c, grad, grad_cost)
    updates, opt_state = optimiser.update(loss_grad, opt_state, setting)
    return optax.apply_updates(setting, updates), opt_state, value

  rows = []
  for clip in args.clips:
    frames_all = np.concatenate([s.frames for s in data.clip_segments(clip)])
    for length in args.lengths:
      if length > len(frames_all):
        continue
      frames = jnp.asarray(frames_all[:length], jnp.float32) / 255.0
      setting = knob.init()
      opt_state = optimiser.init(setting)
      with jax.numpy_dtype_promotion("standard"):
        t_infer = median_time(lambda: infer(state, frames), args.repeats)
        t_step = median_time(lambda: adapt_step(state, setting, opt_state, frames)[2],
                             args.repeats)
      rows.append({"clip": clip, "size": list(frames.shape[1:3]), "frames": length,
                   "inference_s": t_infer, "adapt_step_s": t_step,
                   "inference_fps": length / t_infer, "adapt_step_fps": length / t_step,
                   "step_over_inference": t_step / t_infer})
  print(f"throughput, model {args.model}; {machine()}")
  print(f"{'clip':<14}{'size':>10}{'frames':>7}{'infer fps':>10}{'step fps':>9}{'step/infer':>11}")
  for r in rows:
    size = "x".join(map(str, r["size"]))
    print(f"{r['clip']:<14}{size:>10}{r['frames']:>7}{r['inference_fps']:>10.1f}"
          f"{r['adapt_step_fps']:>9.1f}{r['step_over_inference']:>11.2f}")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "throughput.json").write_text(json.dumps(
      {"machine": machine(), "model": args.model, "repeats": args.repeats, "rows": rows},
      indent=2))
  return rows


if __name__ == "__main__":
  main()
