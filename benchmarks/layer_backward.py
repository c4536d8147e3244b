"""What the two layers of `models.layers` that exist for their backward pass save, measured in
one run: XLA's own operation against ours, forward and input gradient, at the shapes the
ported detectors run them.

- a strided convolution: `lax.conv_general_dilated` (its input gradient a convolution with
  `lhs_dilation`) against the same forward pass with the backward pass at stride 1 over
  space-to-depth blocks (`layers.conv`'s, forced here): BlazeFace's 5x5 stride-2 stem at 256x256,
  where `layers.conv` takes it, and SSDLite's 3x3 stride-2 stem at 300x300, where it does not
  (the zero taps of whole phases add 78% to the work);
- a 2x2 stride-2 max pool: `lax.reduce_window` (gradient: select-and-scatter) against
  `layers.max_pool` (a reshape and a max): BlazeFace's first stride-2 shortcut, 24 channels at
  128x128.

Each is jitted as `sum(sin(layer(x)))`, its value and its gradient with respect to `x` apart,
timed in turn `--repeats` times after compilation (medians). Usage:

    python benchmarks/layer_backward.py [--frames 10] [--repeats 9] [--out DIR]

Prints a table with the machine and writes `layer_backward.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

import jax
import jax.numpy as jnp
from _common import interleaved_times, machine  # benchmarks/ runs as a script folder

from models import layers

NHWC_HWIO = ("NHWC", "HWIO", "NHWC")


def cases(frames: int) -> list[dict]:
  """The layers, each with XLA's form and ours, on random inputs of the detectors' shapes."""
  key = jax.random.key(0)
  out = []
  for name, size, window, cin, cout in (("BlazeFace stem, 5x5 stride 2", 256, 5, 3, 24),
                                        ("SSDLite stem, 3x3 stride 2", 300, 3, 3, 32)):
    x = jax.random.uniform(key, (frames, size, size, cin))
    kernel = jax.random.normal(jax.random.key(1), (window, window, cin, cout)) * 0.1
    out.append({"layer": name, "x": x,
                "xla": lambda x, k=kernel: jax.lax.conv_general_dilated(
                    x, k, (2, 2), "SAME", dimension_numbers=NHWC_HWIO),
                # the space-to-depth backward forced, where `layers.conv` would choose
                "ours": lambda x, k=kernel: layers._strided_conv(x, k, (2, 2), tuple(
                    tuple(p) for p in jax.lax.padtype_to_pads(x.shape[1:3], k.shape[:2],
                                                               (2, 2), "SAME")))})
  x = jax.random.normal(key, (frames, 128, 128, 24))
  out.append({"layer": "BlazeFace shortcut, 2x2 max pool", "x": x,
              "xla": lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                                     (1, 2, 2, 1), "SAME"),
              "ours": lambda x: layers.max_pool(x, (2, 2), (2, 2), "SAME")})
  return out


def measure(case: dict, repeats: int) -> dict:
  x, calls = case["x"], {}
  for form in ("xla", "ours"):
    def objective(x, fn=case[form]):
      return jnp.sum(jnp.sin(fn(x)))
    calls[f"{form} forward"] = jax.jit(objective)
    calls[f"{form} gradient"] = jax.jit(jax.grad(objective))
  values = {k: fn(x) for k, fn in calls.items()}  # compiled here, compared below
  grad_error = float(jnp.max(jnp.abs(values["ours gradient"] - values["xla gradient"])))
  times = interleaved_times({k: (lambda fn=fn: fn(x)) for k, fn in calls.items()}, repeats)
  row = {"layer": case["layer"], "input": list(x.shape), "max_abs_gradient_difference": grad_error}
  for k, each in times.items():
    row[k.replace(" ", "_") + "_s"] = statistics.median(each)
  row["gradient_saving"] = 1 - row["ours_gradient_s"] / row["xla_gradient_s"]
  return row


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--frames", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=9)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  if args.frames < 1 or args.repeats < 1:
    raise SystemExit(f"--frames and --repeats must be at least 1, got {args.frames}, "
                     f"{args.repeats}")
  rows = [measure(case, args.repeats) for case in cases(args.frames)]
  print(f"Layers' forward and input gradient, {args.frames} frames, XLA's operation against "
        f"models.layers (ms, medians of {args.repeats}); {machine()}")
  print(f"{'layer':<34}{'XLA fwd':>9}{'ours fwd':>9}{'XLA grad':>10}{'ours grad':>10}"
        f"{'saved':>7}")
  for r in rows:
    print(f"{r['layer']:<34}{1e3 * r['xla_forward_s']:>9.1f}{1e3 * r['ours_forward_s']:>9.1f}"
          f"{1e3 * r['xla_gradient_s']:>10.1f}{1e3 * r['ours_gradient_s']:>10.1f}"
          f"{r['gradient_saving']:>7.0%}")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "layer_backward.json").write_text(json.dumps(
      {"machine": machine(), "frames": args.frames, "repeats": args.repeats, "rows": rows},
      indent=2))
  return rows


if __name__ == "__main__":
  main()
