"""Ground classification on the held-out autzen LiDAR tiles, sent as LAZ.

Command: `oneadapt run --modality lidar` (`--config lidar`).
Runtime: 141 s on 2 CPU cores, measured while other jobs shared them (`lidar:runlocal`:
seconds).
Expected: the README's LiDAR table (OneAdapt against AWStream, Chameleon and the oracle).
"""


def get_config(arg=None):
  config = {"kind": "lidar", "workload": {}, "sources": None, "lambdas": [0.1, 0.3, 1.0],
            "budgets": [], "methods": None, "static": True}
  if arg == "runlocal":
    config.update(lambdas=[0.3], static=False)
    config["workload"]["max_segments"] = 3
  return config
