"""What AccGrad costs, as a ratio to one forward pass of the same chain, measured in one run.

For K = 1..4 knobs (quantization; + resolution; + frame rate; + frame filter) and for a chain
whose quantization is per macroblock (`roi_quality`: one setting per 16x16 block), on a real
segment through the detection model and its proxy:

- fused AccGrad: one jitted `jax.vjp` through knobs, model and proxy;
- finite differences: 2P + 1 forward passes for P scalar settings (central differences);
- the paper's re-encoding estimator: 2 real x264 encodes per scalar setting at its neighbouring
  rungs plus one backward pass of the DNN (`reencode`, for the K-knob chains).

Every time is the median of `--repeats` runs after compilation; the forward pass and the fused
AccGrad are timed in turn, one call of each per repeat, and their ratio is the median of the
repeats' ratios (each in the JSON). Usage:

    python benchmarks/accgrad_cost.py [--clip carphone] [--repeats 5] [--out DIR]

It prints a table and the machine, and writes `accgrad_cost.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from _common import interleaved_times, machine, median_time  # benchmarks/ runs as a script folder

import knobs
import models
from oneadapt_jax import accgrad, codec, data, proxies

CHAINS = {
    1: lambda size: {"qp": knobs.quantization()},
    2: lambda size: {"resolution": knobs.resolution(), "qp": knobs.quantization()},
    3: lambda size: {"resolution": knobs.resolution(), "frame_rate": knobs.frame_rate(),
                     "qp": knobs.quantization()},
    4: lambda size: {"resolution": knobs.resolution(), "frame_rate": knobs.frame_rate(),
                     "frame_filter": knobs.frame_filter(), "qp": knobs.quantization()},
    "roi": lambda size: {"resolution": knobs.resolution(), "qp": knobs.roi_quality(size)},
}


def finite_differences(forward, setting, segment, step: float = 1e-2):
  values = [forward(setting, segment)]
  for name in setting:
    for sign in (1.0, -1.0):
      values.append(forward({**setting, name: setting[name] + sign * step}, segment))
  return jnp.stack(values)


def measure(name, chain_members, model, segment, raw_uint8, repeats: int) -> dict:
  knob = knobs.chain(**chain_members)
  setting = jax.tree.map(lambda s: s * 0.7, knob.init())  # between rungs, away from the clip
  num_settings = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(setting))
  forward = jax.jit(lambda s, x: proxies.detection(model(knob.apply(s, x))))
  # In turn, one of each per repeat: the ratio is the median of the repeats' own, each taken
  # with the machine in one state (timed in two blocks, a drift between them went into it).
  times = interleaved_times({
      "forward": lambda: forward(setting, segment),
      "fused": lambda: accgrad.acc_grad(knob, model, proxies.detection, setting, segment)},
      repeats)
  t_forward, t_fused = (statistics.median(times[k]) for k in ("forward", "fused"))
  ratios = [f / t for f, t in zip(times["fused"], times["forward"])]
  # Central finite differences: 2P + 1 calls of the jitted forward pass, timed when P is small,
  # else counted (a per-macroblock sweep only repeats the same call).
  if num_settings <= 8:
    t_fd = median_time(lambda: finite_differences(forward, setting, segment), repeats)
  else:
    t_fd = (2 * num_settings + 1) * t_forward
  row = {"chain": str(name), "knobs": len(chain_members), "scalar_settings": num_settings,
         "forward_s": t_forward, "fused_accgrad_s": t_fused,
         "fused_over_forward": statistics.median(ratios), "fused_over_forward_by_repeat": ratios,
         "finite_differences_s": t_fd, "finite_differences_over_forward": t_fd / t_forward,
         "finite_differences_timed": num_settings <= 8}
  if name != "roi":  # x264 has no per-macroblock QP at constant QP (see oneadapt_jax.codec)
    row |= reencode_cost(chain_members, model, raw_uint8, setting, repeats, t_forward)
  return row


def reencode_cost(chain_members, model, raw_uint8, setting, repeats, t_forward) -> dict:
  """2 real x264 encodes per knob at its neighbouring rungs + one DNN backward pass."""
  configs = []
  for name, knob in chain_members.items():
    for s in codec.bracket(len(knob.values), float(setting[name])):
      value = float(knob.to_physical(jnp.float32(s)))
      config = {"resolution": 1.0, "qp": 30.0}
      if name == "resolution":
        config["resolution"] = value
      elif name == "qp":
        config["qp"] = value
      elif name == "frame_rate":
        config["fps"] = value
      else:
        config["sent"] = np.asarray(knobs.frame_filter_sent(raw_uint8 / 255.0, value))
      configs.append(config)

  def encodes():
    for config in configs:
      codec.encode(raw_uint8, preset="veryfast", cache=False, **config)
    return jnp.zeros(())

  frames = jnp.asarray(raw_uint8, jnp.float32) / 255.0
  t_encodes = median_time(encodes, repeats)
  t_backward = median_time(lambda: accgrad.dnn_grad(model, proxies.detection, frames), repeats)
  return {"reencode_s": t_encodes + t_backward, "reencode_encodes_s": t_encodes,
          "reencode_over_forward": (t_encodes + t_backward) / t_forward}


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clip", default="carphone")
  parser.add_argument("--segment", type=int, default=1)
  parser.add_argument("--model", default="blazeface")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  segment = data.clip_segments(args.clip)[args.segment]
  model = models.load(args.model)
  raw = jnp.asarray(segment.as_float())
  rows = [measure(name, build(segment.size), model, raw, segment.frames, args.repeats)
          for name, build in CHAINS.items()]
  header = (f"{'chain':>6}{'knobs':>6}{'settings':>9}{'forward ms':>11}{'AccGrad ms':>11}"
            f"{'ratio':>7}{'by repeat':>13}{'FD ratio':>9}{'re-encode ratio':>16}")
  print(f"AccGrad cost on {args.clip} segment {args.segment} ({segment.frames.shape}), "
        f"model {args.model}; {machine()}")
  print(header)
  for r in rows:
    reencode = f"{r['reencode_over_forward']:.2f}" if "reencode_over_forward" in r else "-"
    each = r["fused_over_forward_by_repeat"]
    spread = f"{min(each):.2f}-{max(each):.2f}"
    print(f"{r['chain']:>6}{r['knobs']:>6}{r['scalar_settings']:>9}{1e3 * r['forward_s']:>11.1f}"
          f"{1e3 * r['fused_accgrad_s']:>11.1f}{r['fused_over_forward']:>7.2f}{spread:>13}"
          f"{r['finite_differences_over_forward']:>9.1f}{reencode:>16}")
  print("times: medians of the repeats; ratio: the median of the repeats' own ratios (each "
        "repeat times both in turn), so it need not be the ratio of the two medians")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "accgrad_cost.json").write_text(json.dumps(
      {"machine": machine(), "clip": args.clip, "segment": args.segment, "model": args.model,
       "repeats": args.repeats, "rows": rows}, indent=2))
  return rows


if __name__ == "__main__":
  main()
