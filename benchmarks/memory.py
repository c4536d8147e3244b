"""Peak resident memory of `oneadapt run` on a long clip, against the clip's length.

Each run is a fresh process (`oneadapt run --clip CLIP --max-segments N ...`), its peak
resident set size read from the kernel as it exits (`VmHWM` in `/proc/self/status`), so
what is measured is everything the process held at its peak: JAX and its compiled programs, the
models, the decoded segments, every cache. The segments are decoded as they are read
(`oneadapt_jax.data.ClipSegments`), so the figure should not grow with N. For scale, the same
clip read whole (`data.read_video`, the frames alone) and streamed segment by segment are
measured the same way.

    python benchmarks/memory.py [--clip vtest] [--lengths 10 40 79] [--methods oneadapt]

Prints a table with the machine and writes `memory.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

from _common import machine  # benchmarks/ runs as a script folder

_READ_WHOLE = ("import sys; from oneadapt_jax import data; "
               "frames, _ = data.read_video(data.clip_path(sys.argv[1]), fps=10, progress=False); "
               "print(frames.nbytes)")
_READ_STREAMED = ("import sys; from oneadapt_jax import data; "
                  "print(sum(s.frames.nbytes for s in data.clip_segments(sys.argv[1])))")

_CLI = "import sys; from oneadapt_jax import cli; sys.exit(cli.main(sys.argv[1:]))"

# On an accelerator the arrays live in the device's memory, which the resident set does not see:
# the run's child also reports its device's peak (`memory_stats`, None on CPU). It registers after
# importing JAX, so it runs before JAX's own exit handler clears the backends.
_DEVICE_REPORT = ("import atexit, sys, jax\n"
                  "def _device_report():\n"
                  "    stats = jax.local_devices()[0].memory_stats() or {}\n"
                  "    if 'peak_bytes_in_use' in stats:\n"
                  "        sys.stderr.write(f\"DevicePeak {stats['peak_bytes_in_use']}\\n\")\n"
                  "atexit.register(_device_report)\n")

# The child reports its own high-water mark (`VmHWM`) as it exits. The kernel's `ru_maxrss` of a
# child is no good here: exec keeps the larger of it and the forking parent's, so under pytest
# every row read as the parent's 1.5 GiB.
_REPORT = ("import atexit, sys\n"
           "def _report():\n"
           "    for line in open('/proc/self/status'):\n"
           "        if line.startswith('VmHWM:'):\n"
           "            sys.stderr.write('VmHWM ' + line.split()[1] + '\\n')\n"
           "atexit.register(_report)\n")


def peaks(command: list[str], *, device: bool = False) -> tuple[float, float | None, float, str]:
  """Runs `python -c CODE ARGS...` (`command`): its peak resident memory (GiB); with `device`,
  the peak of its default device's memory (GiB; None where the device does not report it, as on
  CPU, and without `device`); its wall time (s); and the last line it printed."""
  python, flag, code, *args = command
  assert flag == "-c", command
  start = time.perf_counter()
  prelude = _REPORT + (_DEVICE_REPORT if device else "")
  result = subprocess.run([python, "-c", prelude + code, *args], capture_output=True, text=True,
                          check=False)
  if result.returncode:
    raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                       f"{(result.stdout + result.stderr)[-3000:]}")
  rss_kb, device_bytes = (_reported(result.stderr, tag) for tag in ("VmHWM", "DevicePeak"))
  lines = result.stdout.strip().splitlines() or [""]
  return (rss_kb / 2**20, None if device_bytes is None else device_bytes / 2**30,
          time.perf_counter() - start, lines[-1])


def _reported(stderr: str, tag: str) -> int | None:
  """The last value a child's exit handler wrote as `TAG VALUE` (None if it wrote none)."""
  values = [int(line.split()[1]) for line in stderr.splitlines() if line.startswith(tag + " ")]
  return values[-1] if values else None


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clip", default="vtest")
  parser.add_argument("--lengths", type=int, nargs="+", default=[10, 40, 79],
                      help="segments of the clip each run adapts over")
  parser.add_argument("--methods", nargs="+", default=["oneadapt"])
  parser.add_argument("--lam", type=float, default=0.3)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  python = sys.executable
  rows = []
  for label, code in (("read whole (frames only)", _READ_WHOLE),
                      ("streamed (frames only)", _READ_STREAMED)):
    gib, _, seconds, last = peaks([python, "-c", code, args.clip])
    rows.append({"what": label, "segments": None, "peak_gib": gib, "device_peak_gib": None,
                 "seconds": seconds, "frame_gib": int(last) / 2**30})
  with tempfile.TemporaryDirectory() as tmp:
    for n in args.lengths:
      run = ["run", "--clip", args.clip, "--max-segments", str(n), "--methods", *args.methods,
             "--lambda", str(args.lam), "--no-static", "--no-progress", "--out",
             str(pathlib.Path(tmp) / f"n{n}")]
      command = [python, "-c", _CLI, *run]
      gib, device_gib, seconds, _ = peaks(command, device=True)
      rows.append({"what": f"oneadapt run ({', '.join(args.methods)})", "segments": n,
                   "peak_gib": gib, "device_peak_gib": device_gib, "seconds": seconds,
                   "frame_gib": None})
  print(f"# Peak resident memory, {args.clip}, lambda {args.lam}; {machine()}")
  print(f"{'what':>32} {'segments':>8} {'peak RSS (GiB)':>14} {'device peak (GiB)':>17} "
        f"{'frames (GiB)':>12} {'wall (s)':>8}")
  for r in rows:
    segments = "" if r["segments"] is None else r["segments"]
    frames = "" if r["frame_gib"] is None else f"{r['frame_gib']:.2f}"
    device = "" if r["device_peak_gib"] is None else f"{r['device_peak_gib']:.2f}"
    print(f"{r['what']:>32} {segments:>8} {r['peak_gib']:>14.2f} {device:>17} {frames:>12} "
          f"{r['seconds']:>8.0f}")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "memory.json").write_text(json.dumps(
      {"machine": machine(), "clip": args.clip, "lambda": args.lam, "rows": rows}, indent=1))
  return rows


if __name__ == "__main__":
  main()
