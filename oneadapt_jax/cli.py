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
  for p in (demo, gallery):
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
  return parser


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  from oneadapt_jax import gallery

  try:
    if args.command == "demo":
      gallery.main_gallery(args.out, progress=not args.no_progress)
    elif args.command == "gallery":
      gallery.main_gallery(args.out, num_frames=args.frames, size=args.size,
                           progress=not args.no_progress)
  except ValueError as err:
    print(f"oneadapt {args.command}: error: {err}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
