"""Why lambda barely moves OneAdapt: the two terms of its step, segment by segment.

OneAdapt steps on `-AccGrad / proxy_ref + lambda * ByteGrad / bytes_ref` (per knob), and Adam
normalises the step, so only the sign of that sum matters. This runs the default controller on a
clip (or another kind of stream: `--modality depth`, `speech`, ...) at one lambda and prints,
per segment and knob, the normalised accuracy term, the normalised byte term and their ratio: lambda decides a step only where it is near the ratio.
Not a timing; the numbers are the controller's own.

    python benchmarks/gradient_scale.py [--clip bikes] [--estimator decoded] [--lam 0.3]
    python benchmarks/gradient_scale.py --modality speech --estimator saliency
    python benchmarks/gradient_scale.py --clip vtest --model pedestrian_ssdlite_whole \
        --estimator saliency --calibrate --lam 1

`--calibrate` scales lambda as `oneadapt[calibrate=true]` does (the ratio measured on the first
segment at the start), so the rows are that variant's path.

`--fixed S [S ...]` prints instead, at each fixed setting S of every knob (0: the cheapest rungs,
1: the best), the median over the knobs and `--segments` of the accuracy term and of the ratio;
for detectors also the best scores in the picked frame and the soft count's slope summed over
its ten best candidates (README, "Lambda calibrated per stream"):

    python benchmarks/gradient_scale.py --clip vtest --model pedestrian_ssdlite_whole \
        --estimator saliency --max-segments 24 --fixed 0 0.1 0.25 0.5 1 --segments 5 12 20 \
        [--proxy gentle_count]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from _common import machine  # benchmarks/ runs as a script folder

from oneadapt_jax import workloads
from oneadapt_jax.core import Controller, config_of, scale_of_terms


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--modality", default="video", choices=tuple(workloads.REGISTRY))
  parser.add_argument("--clip", default="bikes", help="video only: the clip (detection)")
  parser.add_argument("--model", default=None,
                      help="video only: the detector, where the clip has several (the bench's "
                           "vtest configs use pedestrian_ssdlite_whole)")
  parser.add_argument("--calibrate", action="store_true",
                      help="scale lambda by the first segment's ratio, as oneadapt[calibrate=true]")
  parser.add_argument("--estimator", default="decoded", choices=("decoded", "saliency"))
  parser.add_argument("--proxy", default=None, help="another proxy of the task's (by name)")
  parser.add_argument("--fixed", type=float, nargs="+", default=None,
                      help="the terms at these fixed settings instead of along the path")
  parser.add_argument("--segments", type=int, nargs="+", default=[0],
                      help="with --fixed: the segments to take the medians over")
  parser.add_argument("--lam", type=float, default=0.3)
  parser.add_argument("--max-segments", type=int, default=10)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  if args.modality == "video":
    workload = workloads.build("video", task="detection", source=args.clip, model=args.model,
                               max_segments=args.max_segments)
  else:
    workload = workloads.build(args.modality, max_segments=args.max_segments)
  stream = args.clip if args.modality == "video" else args.modality
  bound = Controller(estimator=args.estimator, proxy=args.proxy).bind(workload)
  setting, opt_state = bound.init(0.5)
  proxy_ref, cost_ref = bound.jitted_reference(bound.model_state, workload.raw(0))
  if args.fixed is not None:
    return fixed(workload, bound, (proxy_ref, cost_ref), args.fixed, args.segments)
  step, camera = bound.jitted.step, bound.jitted.camera
  scale = 1.0
  rows = []
  for i in range(workload.num_segments):
    raw = workload.raw(i)
    config = config_of(bound.knob, setting)
    _, cotangent, _ = bound.server(workload, i, config)
    grad, _, grad_cost = camera(setting, raw, cotangent)
    for name in grad:
      accuracy = float(-grad[name] / proxy_ref)
      cost = float(grad_cost[name] / cost_ref)
      rows.append({"segment": i, "knob": name, "value": config[name], "accuracy_term": accuracy,
                   "byte_term": cost, "ratio": abs(accuracy) / max(abs(cost), 1e-12)})
    if args.calibrate and i == 0:  # as `calibration_scale`, from this segment's own terms
      scale = scale_of_terms(grad, grad_cost, (proxy_ref, cost_ref))
    setting, opt_state = step(setting, opt_state, grad, grad_cost, proxy_ref, cost_ref,
                              jnp.float32(args.lam * scale))
  calibrated = f" x {scale:.3g} (calibrated)" if args.calibrate else ""
  print(f"# {stream}, estimator {args.estimator}, lambda {args.lam}{calibrated}; {machine()}")
  print(f"{'segment':>7} {'knob':>18} {'value':>7} {'accuracy term':>14} {'byte term':>10} "
        f"{'|ratio|':>9}")
  for r in rows:
    print(f"{r['segment']:>7} {r['knob']:>18} {r['value']:>7.3g} {r['accuracy_term']:>+14.3g} "
          f"{r['byte_term']:>+10.3g} {r['ratio']:>9.3g}")
  ratios = np.asarray([r["ratio"] for r in rows])
  flips = {name: int(np.sum(np.diff(np.sign([r["accuracy_term"] for r in rows
                                              if r["knob"] == name])) != 0))
           for name in grad}
  summary = {"median_ratio": float(np.median(ratios)), "ratio_range": [float(ratios.min()),
                                                                       float(ratios.max())],
             "sign_changes_of_accuracy_term": flips}
  print(f"median |ratio| {summary['median_ratio']:.3g} (range {ratios.min():.3g} to "
        f"{ratios.max():.3g}); sign changes of the accuracy term over the segments: {flips}")
  args.out.mkdir(parents=True, exist_ok=True)
  payload = {"machine": machine(), "clip": stream, "estimator": args.estimator,
             "lambda": args.lam, "calibration_scale": scale, "rows": rows, **summary}
  suffix = "_calibrated" if args.calibrate else ""
  (args.out / f"gradient_scale_{stream}_{args.estimator}{suffix}.json").write_text(
      json.dumps(payload, indent=1))
  return payload


def fixed(workload, bound, refs, starts, segments) -> list[dict]:
  """The two terms at fixed settings (see the module docstring); prints and returns the rows."""
  proxy_ref, cost_ref = (float(r) for r in refs)
  rows = []
  for start in starts:
    setting, _ = bound.init(start)
    config = config_of(bound.knob, setting)
    accuracy, ratios, best, slopes = [], [], [], []
    for i in segments:
      _, cotangent, _ = bound.server(workload, i, config)
      grad, _, grad_cost = bound.jitted.camera(setting, workload.raw(i), cotangent)
      for k in grad:
        accuracy.append(abs(float(grad[k])) / proxy_ref)
        ratios.append(accuracy[-1] / max(abs(float(grad_cost[k])) / cost_ref, 1e-12))
      outputs = workload.model(jnp.asarray(workload.sent(i, config, bound.picked)[0][-1:]))
      if "scores" in outputs:  # a detector: its ten best candidates in the picked frame
        top = np.sort(np.asarray(jax.nn.sigmoid(outputs["scores"])).ravel())[::-1][:10]
        sharp = jax.nn.sigmoid(20.0 * (top - 0.5))
        best.append(float(top[0]))
        slopes.append(float(np.sum(20.0 * sharp * (1.0 - sharp))))
    row = {"setting": start, "config": config, "accuracy_term": float(np.median(accuracy)),
           "ratio": float(np.median(ratios))}
    if best:
      row |= {"best_score": float(np.median(best)), "soft_count_slope": float(np.median(slopes))}
    rows.append(row)
    print(f"setting {start:g} {config}: median |accuracy term| {row['accuracy_term']:.3g}, "
          f"median ratio {row['ratio']:.3g}"
          + (f", best score {row['best_score']:.2f}, soft-count slope over the ten best "
             f"{row['soft_count_slope']:.2f}" if best else ""))
  return rows


if __name__ == "__main__":
  main()
