"""The `oneadapt` command line."""

from __future__ import annotations

import argparse
import pathlib
import sys


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="oneadapt", description="Differentiable configuration knobs for streaming analytics.")
  sub = parser.add_subparsers(dest="command", required=True)
  demo = sub.add_parser(
      "demo", help="run the default demo on bundled data (for now: the knob gallery)")
  demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/demo"))
  gallery = sub.add_parser(
      "gallery", help="every knob at several settings on a real image: PNG grid and table")
  gallery.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/gallery"))
  gallery.add_argument("--frames", type=int, default=8, help="frames in the panning clip")
  gallery.add_argument("--size", type=int, default=256, help="frame side in pixels")
  sub.add_parser("fetch", help="download (once) and verify the bundled clips and model weights into the cache")
  fidelity = sub.add_parser(
      "fidelity", help="surrogate bytes and frames against the real x264 encoder: table and plot")
  fidelity.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/fidelity"))
  fidelity.add_argument("--clips", nargs="+", default=["bikes", "carphone"])
  fidelity.add_argument("--segment", type=int, default=0, help="which segment of each clip")
  fidelity.add_argument("--preset", default="medium", help="x264 preset")
  run = sub.add_parser(
      "run", help="OneAdapt and its baselines on a bundled clip over real x264 encodes (resumable)")
  run.add_argument("--clip", default="carphone")
  run.add_argument("--task", default="detection", choices=["detection", "segmentation", "keypoints"])
  run.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=[0.1, 0.3, 1.0])
  run.add_argument("--methods", nargs="+", default=["oneadapt", "awstream", "oracle"])
  run.add_argument("--max-segments", type=int, default=None)
  run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/run"))
  check = sub.add_parser(
      "proxy-check", help="Spearman of each accuracy proxy against its real metric over x264 encodes")
  for p in (demo, gallery, fidelity, check, run):
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.command in ("demo", "gallery"):
      from oneadapt_jax import gallery

      if args.command == "demo":
        gallery.main_gallery(args.out, progress=not args.no_progress)
      else:
        gallery.main_gallery(args.out, num_frames=args.frames, size=args.size,
                             progress=not args.no_progress)
    elif args.command == "fetch":
      import models
      from oneadapt_jax import data

      for name, path in {**data.fetch_clips(), **models.fetch_weights()}.items():
        print(f"{name:<28} {path}  (sha256 verified)")
    elif args.command == "fidelity":
      from oneadapt_jax import fidelity

      fidelity.main_fidelity(args.out, clips=args.clips, segment_index=args.segment,
                             preset=args.preset, progress=not args.no_progress)
    elif args.command == "run":
      from oneadapt_jax import adapt

      adapt.run(args.out, task=args.task, clip=args.clip, lambdas=args.lambdas,
                methods=args.methods, max_segments=args.max_segments,
                progress=not args.no_progress)
    elif args.command == "proxy-check":
      from oneadapt_jax import proxy_check

      proxy_check.main(progress=not args.no_progress)
  except (ValueError, FileNotFoundError) as err:
    print(f"oneadapt {args.command}: error: {err}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
