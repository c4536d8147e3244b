"""Every benchmark of `benchmarks/RESULTS.md` in one run, on JAX's default backend.

On a machine with a GPU or TPU (and the matching jaxlib, e.g. `pip install "jax[cuda12]==0.10.1"`)
the jitted work runs there; on CPU it runs on CPU. Each script writes its JSON under
`OUT/<platform>/`, and `OUT/<platform>/RESULTS.md` gathers their printed tables under the
device's name, so the tables of two machines sit side by side.

    python benchmarks/run_all.py [--out results/benchmarks] [--only NAME ...] [--quick]

`--quick` runs each script at its smallest configuration (what the tests run): a check that the
whole set runs on a device, not figures to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pathlib
import sys
import time

import jax
from _common import machine  # benchmarks/ runs as a script folder

#: Each benchmark with its arguments: the full run, and the quick one.
BENCHMARKS = {
    "accgrad_cost": ([], ["--repeats", "1"]),
    "server_overhead": ([], ["--repeats", "1", "--clips", "carphone"]),
    "throughput": (["--ycbcr420"], ["--repeats", "1", "--sizes", "carphone", "--lengths", "5"]),
    "pedestrian_tiling": ([], ["--every", "40", "--grids", "1x1", "--repeats", "1"]),
    "gradient_scale": ([], ["--clip", "carphone", "--max-segments", "2"]),
    "memory": ([], ["--clip", "carphone", "--lengths", "2"]),
    "depth_codec": ([], ["--segments", "0"]),
    "speech_codec": ([], ["--segments", "1"]),
}


class _Tee(io.TextIOBase):
  """Writes to the terminal and keeps a copy."""

  def __init__(self, stream):
    self.stream, self.copy = stream, io.StringIO()

  def write(self, text):
    self.stream.write(text)
    return self.copy.write(text)

  def flush(self):
    self.stream.flush()


def main(argv=None) -> pathlib.Path:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args(argv)
  platform = jax.default_backend()
  out = args.out / platform
  out.mkdir(parents=True, exist_ok=True)
  quick = " (quick: the smallest configurations)" if args.quick else ""
  sections = [f"# Benchmarks on {platform}\n\n{machine()}; {time.strftime('%Y-%m-%d')}{quick}\n"]
  for name in args.only:
    full, quick = BENCHMARKS[name]
    module = importlib.import_module(name)
    tee = _Tee(sys.stdout)
    start = time.perf_counter()
    with contextlib.redirect_stdout(tee):
      module.main([*(quick if args.quick else full), "--out", str(out)])
    sections.append(f"## {name} ({time.perf_counter() - start:.0f} s)\n\n```\n"
                    f"{tee.copy.getvalue().rstrip()}\n```\n")
  report = out / "RESULTS.md"
  report.write_text("\n".join(sections))
  print(f"wrote {report}")
  return report


if __name__ == "__main__":
  main()
