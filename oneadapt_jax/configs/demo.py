"""The demo: face detection on carphone and bikes, OneAdapt against every baseline.

Command: `make demo` (`oneadapt demo`, or `oneadapt run --config demo`).
Runtime: 12 minutes on 2 CPU cores (the README's figure); `demo:runlocal` is what
tests/test_adapt.py's demo test runs.
Expected: the tables and comparison of the README's "What the demo measured here".
"""


def get_config(arg=None):
  config = {"kind": "video", "workload": {"task": "detection"}, "sources": ["carphone", "bikes"],
            "lambdas": [0.03, 0.1, 0.3, 1.0, 3.0], "budgets": [], "methods": None,
            "static": True}
  if arg == "runlocal":
    config.update(sources=["carphone"], lambdas=[0.3])
    config["workload"]["max_segments"] = 2
  return config
