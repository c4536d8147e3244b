"""One video task on one clip: every method at three lambdas, and the static sweep.

Command: `oneadapt run` (`--config video`; `--clip`, `--task`, `--proxy` ... override it).
Runtime: carphone is 4 of the demo's 14 segments, so a few of its 12 minutes (not timed alone);
`video:runlocal` (2 segments, one lambda, 2 QPs in the profiling grid) is what
tests/test_adapt.py runs.
Expected: on carphone at lambda 0.3, OneAdapt at about 0.95 accuracy and 9% of the best-quality
bytes (the README's demo table).
"""


def get_config(arg=None):
  config = {"kind": "video", "workload": {"task": "detection"}, "sources": ["carphone"],
            "lambdas": [0.1, 0.3, 1.0], "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":  # 2 segments, one lambda, a profiling grid of 2 QPs (20 and 36)
    config.update(lambdas=[0.3])
    config["workload"].update(max_segments=2, qp_stride=8)
  return config
