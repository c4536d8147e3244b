"""Every kind of stream, one folder each, registered by name.

`build(kind, **options)` builds a registered kind's workload (`oneadapt_jax.core.Workload`);
adding a kind of stream is one folder that implements the protocol and one line in `REGISTRY`.

| kind | task | options |
|---|---|---|
| `video` | detection, segmentation, keypoints on a clip, x264 | `task`, `source`, `proxy`, `max_segments`, ... |
| `audio` | keyword spotting on espeak-ng speech, PCM | `max_segments`, `seed` |
| `lidar` | ground classification on autzen tiles, LAZ | `max_segments` |
| `depth` | ground segmentation of depth video rendered over autzen, FFV1 | `max_segments` |
| `speech` | text from espeak-ng sentences (CTC, word error rate), Opus | `max_segments`, `seed` |
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from oneadapt_jax.core import Workload

#: kind -> the module whose `build(**options)` makes its workload (imported when asked for).
REGISTRY: dict[str, str] = {
    "video": "oneadapt_jax.workloads.video",
    "audio": "oneadapt_jax.workloads.audio",
    "lidar": "oneadapt_jax.workloads.lidar",
    "depth": "oneadapt_jax.workloads.depth",
    "speech": "oneadapt_jax.workloads.speech",
}


def builder(kind: str) -> Callable[..., Workload]:
  """The `build` function of a registered kind; an unknown kind is named with the known ones."""
  if kind not in REGISTRY:
    raise ValueError(f"unknown kind of stream {kind!r}; available: {', '.join(REGISTRY)}")
  return importlib.import_module(REGISTRY[kind]).build


def options(kind: str) -> tuple[str, ...]:
  """The options `build(kind, ...)` takes."""
  return tuple(inspect.signature(builder(kind)).parameters)


def build(kind: str, **opts) -> Workload:
  """The workload of a registered kind. Options it does not take are refused by name (`None`
  values are left out, so a command line's unset flags pass through)."""
  build_fn = builder(kind)
  opts = {k: v for k, v in opts.items() if v is not None}
  unknown = set(opts) - set(options(kind))
  if unknown:
    raise ValueError(f"the {kind} workload takes no {', '.join(sorted(unknown))}; it takes "
                     f"{', '.join(options(kind))}")
  return build_fn(**opts)


__all__ = ("REGISTRY", "build", "builder", "options")
