"""Keyword spotting on 24 s of held-out espeak-ng voices, sent as PCM.

Command: `oneadapt run --modality audio` (`--config audio`).
Runtime: 79 s on 2 CPU cores, measured while another job shared them (`audio:runlocal`: seconds).
Expected: the README's audio table (OneAdapt against AWStream, Chameleon and the oracle).
"""


def get_config(arg=None):
  config = {"kind": "audio", "workload": {}, "sources": None, "lambdas": [0.1, 0.3, 1.0],
            "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3], static=False)
    config["workload"]["max_segments"] = 3
  return config
