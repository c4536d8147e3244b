"""Text from speech: a CTC recogniser on espeak-ng sentences in held-out voices, sent as Opus.

Command: `oneadapt run --modality speech` (`--config speech`).
Runtime: a few minutes on 2 CPU cores (`speech:runlocal`: seconds).
Expected: the README's speech row (OneAdapt against AWStream, Chameleon and the oracle).
"""


def get_config(arg=None):
  config = {"kind": "speech", "workload": {}, "sources": None, "lambdas": [0.1, 0.3, 1.0],
            "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3], static=False)
    config["workload"]["max_segments"] = 3
  return config
