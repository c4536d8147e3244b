"""The demo: pedestrian detection on the surveillance clip vtest, OneAdapt against every baseline.

Command: `make demo` (`oneadapt demo`, or `oneadapt run --config demo`).
The demo runs the SSDLite pedestrian detector on the whole frame (`pedestrian_ssdlite_whole`,
3.6 times cheaper than the default 2x3 tiles: `benchmarks/pedestrian_tiling.py`) over vtest's first 12 seconds, so that the
72-configuration static sweep and the oracle fit in its time; `oneadapt run --config vtest` runs
the tiled detector over the whole clip. Runtime: measured in the README ("The demo").
`demo:runlocal` is what tests/test_adapt.py's demo test runs.
"""

#: The demo's prefix of vtest (a demo, not the whole clip: see `configs/vtest.py`).
DEMO_SEGMENTS = 12


def get_config(arg=None):
  config = {"kind": "video",
            "workload": {"task": "detection", "model": "pedestrian_ssdlite_whole",
                         "max_segments": DEMO_SEGMENTS},
            "sources": ["vtest"], "lambdas": [0.1, 0.3, 1.0], "budgets": [], "methods": None,
            "static": True}
  if arg == "runlocal":  # 2 segments, one lambda, a grid of 2 QPs (20 and 36)
    config.update(lambdas=[0.3])
    config["workload"].update(max_segments=2, qp_stride=8)
  return config
