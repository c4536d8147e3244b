"""Ground segmentation on depth video rendered over the autzen survey's held-out east, as FFV1.

Command: `oneadapt run --modality depth` (`--config depth`).
Runtime: a few minutes on 2 CPU cores (`depth:runlocal`: seconds).
Expected: the README's depth table (OneAdapt against AWStream, Chameleon and the oracle).
"""


def get_config(arg=None):
  config = {"kind": "depth", "workload": {}, "sources": None, "lambdas": [0.1, 0.3, 1.0],
            "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3], static=False)
    config["workload"]["max_segments"] = 3
  return config
