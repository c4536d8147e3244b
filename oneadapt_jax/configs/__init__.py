"""Experiments as config files (big_vision style): one module per experiment with `get_config`.

`get(name)` loads `oneadapt_jax/configs/NAME.py` (or a path to a `.py` file of your own) and calls
its `get_config(arg)`; `NAME:ARG` passes `ARG`, e.g. `demo:runlocal`, the small variant every
config has for tests and notebooks. A config is a plain dict:

    {"kind": "video",                    # a kind of stream in oneadapt_jax.workloads.REGISTRY
     "workload": {"task": "detection"},  # options of that kind's build()
     "sources": ["carphone", "bikes"],   # one workload per source (None: the kind's own stream)
     "lambdas": [0.1, 0.3, 1.0], "budgets": [],
     "methods": None,                    # None: every registered method that applies
     "static": True}                     # also every grid configuration held fixed

`override(config, "workload.max_segments=2")` sets a (dotted) key; the value is read as JSON when
it parses, else as a string. `oneadapt run --config NAME --set KEY=VALUE` does both.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import pathlib

#: The bundled experiments.
NAMES = ("demo", "video", "vtest", "audio", "lidar", "depth", "speech", "bench")
KEYS = ("kind", "workload", "sources", "lambdas", "budgets", "methods", "static")
#: The keys of a bench config (`oneadapt_jax.bench`, `configs/bench.py`): each method's own
#: trade-off labels (`sweeps`), the cost model's options, the cost axis of its curves, the
#: bootstrap's resamples.
BENCH_KEYS = ("name", "kind", "workload", "sources", "sweeps", "static", "axis", "cost",
              "resamples")


def get(spec: str) -> dict:
  """The config `NAME[:ARG]` (a bundled name or a path to a `.py` file)."""
  name, _, arg = spec.partition(":")
  if name.endswith(".py"):
    path = pathlib.Path(name)
    if not path.is_file():
      raise FileNotFoundError(f"config file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  elif name in NAMES:
    module = importlib.import_module(f"oneadapt_jax.configs.{name}")
  else:
    raise ValueError(f"unknown config {name!r}; bundled: {', '.join(NAMES)} (or a path to a "
                     ".py file with get_config)")
  if not hasattr(module, "get_config"):
    raise ValueError(f"config {name!r} has no get_config()")
  config = module.get_config(arg or None)
  known = BENCH_KEYS if "sweeps" in config else KEYS
  unknown = set(config) - set(known)
  if unknown:
    raise ValueError(f"config {name!r}: unknown keys {sorted(unknown)}; known: {', '.join(known)}")
  return config


def override(config: dict, assignment: str) -> dict:
  """A copy of `config` with one `KEY=VALUE` (dotted keys reach into `workload`)."""
  key, sep, text = assignment.partition("=")
  if not sep or not key:
    raise ValueError(f"an override is KEY=VALUE, got {assignment!r}")
  try:
    value = json.loads(text)
  except json.JSONDecodeError:
    value = text
  config = copy.deepcopy(config)
  *parents, last = key.split(".")
  known = BENCH_KEYS if "sweeps" in config else KEYS
  if parents and parents != ["workload"] or not parents and last not in known:
    raise ValueError(f"unknown config key {key!r}; known: {', '.join(known)}, workload.OPTION")
  (config.setdefault("workload", {}) if parents else config)[last] = value
  return config


__all__ = ("BENCH_KEYS", "KEYS", "NAMES", "get", "override")
