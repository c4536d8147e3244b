"""The `oneadapt` command line."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

TASKS = ["detection", "segmentation", "keypoints"]


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="oneadapt", description="Differentiable configuration knobs for streaming analytics.")
  sub = parser.add_subparsers(dest="command", required=True)
  demo = sub.add_parser(
      "demo", help="OneAdapt against AWStream, Chameleon, Reducto and the oracle on the bundled "
                   "clips (the `demo` config): table, results.json and trade-off plot")
  demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/demo"))
  demo.add_argument("--config", default="demo", help="an experiment config, NAME[:ARG] or a "
                                                     "path (default demo; demo:runlocal is small)")
  demo.add_argument("--clips", nargs="+", default=None, help="override the config's clips")
  demo.add_argument("--task", default=None, choices=TASKS)
  demo.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None)
  demo.add_argument("--max-segments", type=int, default=None)
  gallery = sub.add_parser(
      "gallery", help="every knob at several settings on a real image: PNG grid and table")
  gallery.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/gallery"))
  gallery.add_argument("--frames", type=int, default=8, help="frames in the panning clip")
  gallery.add_argument("--size", type=int, default=256, help="frame side in pixels")
  fetch = sub.add_parser(
      "fetch", help="download (once) and verify the bundled clips, LiDAR and model weights into "
                    "the cache, and verify the shipped audio, LiDAR, depth and speech models' weights "
                    "(training any that is missing)")
  fetch.add_argument("--no-train", action="store_true", help="only download and verify")
  train = sub.add_parser(
      "train", help="(re)train a model this repository trains: kws (audio), pointnet (LiDAR), "
                    "depthseg (depth video) or asr (speech)")
  train.add_argument("name", choices=["kws", "pointnet", "depthseg", "asr"])
  train.add_argument("--seed", type=int, default=0)
  fidelity = sub.add_parser(
      "fidelity", help="surrogate bytes and frames against the real x264 encoder: table and plot")
  fidelity.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/fidelity"))
  fidelity.add_argument("--clips", nargs="+", default=["bikes", "carphone"])
  fidelity.add_argument("--segment", type=int, default=0, help="which segment of each clip")
  fidelity.add_argument("--preset", default="medium", help="x264 preset")
  bench = sub.add_parser(
      "bench", help="the honest comparison: every method over its own trade-off sweep, curve "
                    "against curve with bootstrap intervals (resumable): report.md, curves.png")
  bench.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/bench"))
  bench.add_argument("--config", dest="bench_configs", nargs="+", default=None,
                     metavar="NAME", help="bench configs (bench:NAME or NAME; default: the "
                                          "suite, oneadapt_jax.configs.bench.SUITE)")
  bench.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key of every bench config, e.g. "
                          "workload.max_segments=20; repeatable")
  run = sub.add_parser(
      "run", help="OneAdapt and its baselines on one kind of stream over its real sender "
                  "(resumable); an experiment config with command-line overrides")
  run.add_argument("--config", default=None,
                   help="an experiment config: NAME[:ARG] (bundled: demo, video, audio, lidar, "
                        "depth, speech; ARG runlocal: the small variant) or a path to a .py file with "
                        "get_config (default: video, or the --modality's)")
  run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (JSON value), e.g. lambdas=[0.1] or "
                        "workload.max_segments=2; repeatable")
  run.add_argument("--modality", default=None,
                   help="a kind of stream (video, audio, lidar, depth, speech): the config of that "
                        "name")
  source = run.add_mutually_exclusive_group()
  source.add_argument("--clip", default=None, help="a bundled clip (video; default carphone)")
  source.add_argument("--video", type=pathlib.Path, help="a video file of your own")
  source.add_argument("--dataset", help="a bundled clip read through the tensorflow-datasets "
                                        "builder (oneadapt_jax.tfds_video), e.g. carphone")
  run.add_argument("--task", default=None, choices=TASKS)
  run.add_argument("--model", default=None,
                   help="the task's model, where it has several (video detection: blazeface, "
                        "pedestrian_ssdlite, pedestrian_ssdlite_whole; default: the clip's)")
  run.add_argument("--proxy", default=None,
                   help="another proxy of the task for OneAdapt to ascend: expected_f1 "
                        "(detection); default: the task's own (`oneadapt proxy-check`)")
  trade = run.add_mutually_exclusive_group()
  trade.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None,
                     help="utility accuracy - lambda * bytes / best bytes (default 0.1 0.3 1)")
  trade.add_argument("--budget", dest="budgets", type=float, nargs="+", default=None,
                     help="bandwidth budgets in bytes per second (dual ascent for OneAdapt)")
  run.add_argument("--methods", nargs="+", default=None,
                   help="default: every method that applies (oneadapt awstream chameleon "
                        "reducto oracle; reducto needs a frame filter, which only video has)")
  run.add_argument("--no-static", action="store_true", help="skip the static sweep")
  run.add_argument("--max-segments", type=int, default=None)
  run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/run"))
  batch = sub.add_parser(
      "batch", help="OneAdapt over many clips x lambdas, runs sharded across jax.devices() "
                    "(checkpointed, resumable)")
  batch.add_argument("config", type=pathlib.Path,
                     help="JSON or TOML: kind, sources, lambdas, budgets, task, ...")
  batch.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/batch"))
  batch.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                     help="multi-process job (jax.distributed): process 0's address; with "
                          "--num-processes and --process-id. Under srun or mpirun with several "
                          "tasks these come from the launcher")
  batch.add_argument("--num-processes", type=int, default=None)
  batch.add_argument("--process-id", type=int, default=None)
  check = sub.add_parser(
      "proxy-check", help="Spearman of each accuracy proxy against its real metric over x264 "
                          "encodes (or, with --modality audio|lidar|depth|speech, over the real "
                          "senders)")
  check.add_argument("--modality", default="video",
                     help="video (the documented cases), or another kind of stream")
  check.add_argument("--clip", default=None,
                     help="video: check one clip's task over its segments instead (e.g. vtest)")
  check.add_argument("--task", default="detection", choices=TASKS,
                     help="with --clip: the task")
  check.add_argument("--every", type=int, default=4,
                     help="with --clip: every N-th segment (default 4)")
  check.add_argument("--max-segments", type=int, default=None,
                     help="with --clip: only the first N segments")
  check.add_argument("--first-segment", type=int, default=0,
                     help="with --clip: start at this segment (e.g. a half held out from "
                          "tuning); --max-segments counts from it")
  check.add_argument("--model", default=None, help="with --clip: the task's model")
  check.add_argument("--json", type=pathlib.Path, default=None,
                     help="with --clip: also write the result here")
  for p in (demo, gallery, fidelity, check, run, batch, fetch, train, bench):
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
  return parser


def _apply(config: dict, *, sources=None, task=None, proxy=None, max_segments=None, model=None,
           **top) -> dict:
  """`config` with the command line's flags that were given laid over it."""
  config = {**config, "workload": dict(config.get("workload", {}))}
  if sources is not None:
    config["sources"] = list(sources)
  for key, value in (("task", task), ("proxy", proxy), ("max_segments", max_segments),
                     ("model", model)):
    if value is not None:
      config["workload"][key] = value
  config.update({k: v for k, v in top.items() if v is not None})
  return config


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.command == "demo":
      from oneadapt_jax import configs, demo

      config = configs.get(args.config)
      config = _apply(config, sources=args.clips, lambdas=args.lambdas, task=args.task,
                      max_segments=args.max_segments)
      demo.main(args.out, config, progress=not args.no_progress)
    elif args.command == "gallery":
      from oneadapt_jax import gallery

      gallery.main_gallery(args.out, num_frames=args.frames, size=args.size,
                           progress=not args.no_progress)
    elif args.command == "fetch":
      import models
      from oneadapt_jax import data, lidar

      for name, path in {**data.fetch_clips(), **models.fetch_weights(), **lidar.fetch()}.items():
        print(f"{name:<28} {path}  (sha256 verified)")
      if not args.no_train:
        from models import trained
        from oneadapt_jax import train

        for name, info in train.ensure(progress=not args.no_progress).items():
          path = trained.source_path(name)
          made = "shipped" if path.parent == trained.SHIPPED else "trained here"
          print(f"{name:<28} {path}  ({made}, seed {info['seed']}, "
                f"held-out accuracy {info['held_out_accuracy']:.3f}, sha256 verified)")
    elif args.command == "train":
      from oneadapt_jax import train

      info = train.train(args.name, args.seed, progress=not args.no_progress)
      print(f"{args.name}: held-out accuracy {info['held_out_accuracy']:.3f} "
            f"({info['train_seconds']} s of training, seed {info['seed']})")
    elif args.command == "fidelity":
      from oneadapt_jax import fidelity

      fidelity.main_fidelity(args.out, clips=args.clips, segment_index=args.segment,
                             preset=args.preset, progress=not args.no_progress)
    elif args.command == "run":
      from oneadapt_jax import configs, experiment, workloads

      if args.config is not None and args.modality is not None:
        raise ValueError("give --config or --modality, not both")
      if args.modality is not None:
        workloads.builder(args.modality)  # names an unknown kind with the registered ones
      config = configs.get(args.config or args.modality or "video")
      for assignment in args.overrides:
        config = configs.override(config, assignment)
      source = (str(args.video) if args.video is not None
                else f"tfds:{args.dataset}" if args.dataset is not None else args.clip)
      if args.budgets is not None and args.lambdas is None:
        config["lambdas"] = []
      config = _apply(config, sources=None if source is None else [source],
                      lambdas=args.lambdas, budgets=args.budgets, methods=args.methods,
                      task=args.task, proxy=args.proxy, max_segments=args.max_segments,
                      model=args.model)
      if args.no_static:
        config["static"] = False
      experiment.run_config(config, args.out, subfolders=False if len(config.get("sources") or
                                                                      [None]) == 1 else None,
                            progress=not args.no_progress)
    elif args.command == "bench":
      from oneadapt_jax import bench
      from oneadapt_jax.configs import bench as suite

      bench.run_suite(args.bench_configs or suite.SUITE, args.out, overrides=args.overrides,
                      progress=not args.no_progress)
      print(f"report: {args.out / 'report.md'}")
    elif args.command == "batch":
      from oneadapt_jax import batch, distributed

      distributed.initialize(args.coordinator, args.num_processes, args.process_id)
      batch.main(args.config, args.out, progress=not args.no_progress)
    elif args.command == "proxy-check":
      from oneadapt_jax import proxy_check

      if args.modality == "video" and args.clip is not None:
        if args.every < 1:
          raise ValueError(f"--every must be at least 1, got {args.every}")
        result = proxy_check.clip_check(args.task, args.clip, every=args.every,
                                        max_segments=args.max_segments, model=args.model,
                                        first_segment=args.first_segment,
                                        progress=not args.no_progress)
        proxy_check.print_clip_check(result)
        if args.json is not None:
          args.json.write_text(json.dumps(result, indent=1))
      elif args.modality == "video":
        proxy_check.main(progress=not args.no_progress)
      else:
        from oneadapt_jax import workloads

        result = proxy_check.check(workloads.build(args.modality),
                                   progress=not args.no_progress)
        print(f"{args.modality}: Spearman of proxy against metric over {result['pairs']} "
              f"(segment, configuration) pairs: pooled {result['spearman_pooled']:.3f}, "
              f"per segment {result['spearman_per_segment_mean']:.3f} (mean over the "
              f"{result['segments_with_varying_metric']} segments whose metric varies)")
  except (ValueError, FileNotFoundError) as err:
    print(f"oneadapt {args.command}: error: {err}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
