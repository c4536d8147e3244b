"""Pedestrian detection on the 80-second surveillance clip vtest: every method, the static sweep.

Command: `oneadapt run --config vtest` (or `oneadapt run --clip vtest --task detection`).
Runtime: not timed whole on 2 CPU cores. The tiled detector costs 185 ms a frame there
(`benchmarks/pedestrian_tiling.py`), so the 72-configuration static sweep over 79 segments is
about 3 hours of inference alone; runs resume where they stopped. `vtest:runlocal` (2 segments,
one lambda) is what tests/test_configs.py loads.
Expected: see the README's vtest proxy table; the comparison itself is `oneadapt bench`
(`configs/bench.py`, `benchmarks/COMPARISON.md`).
"""


def get_config(arg=None):
  config = {"kind": "video", "workload": {"task": "detection"}, "sources": ["vtest"],
            "lambdas": [0.1, 0.3, 1.0], "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3])
    config["workload"]["max_segments"] = 2
  return config
