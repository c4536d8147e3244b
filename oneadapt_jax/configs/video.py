"""One video task on one clip: every method at three lambdas, and the static sweep.

Command: `oneadapt run` (`--config video`; `--clip`, `--task`, `--proxy` ... override it).
Runtime: about 3 minutes for carphone on 2 CPU cores (`video:runlocal`: under a minute).
Expected: on carphone at lambda 0.3, OneAdapt at about 0.95 accuracy and 9% of the best-quality
bytes (the README's demo table).
"""


def get_config(arg=None):
  config = {"kind": "video", "workload": {"task": "detection"}, "sources": ["carphone"],
            "lambdas": [0.1, 0.3, 1.0], "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3])
    config["workload"]["max_segments"] = 2
  return config
