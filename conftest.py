"""Test-wide strictness (equinox-style): no silent dtype or rank promotion anywhere; and one XLA
compilation cache for the whole run.

Each test builds its own workloads, and each workload compiles its own controller (about 30 s
for OneAdapt on carphone, measured here); the programs are the same from test to test, so the
persistent cache, shared by the xdist workers and the processes they start, compiles each once
(the second build then took 9 s instead of 32 s).
"""

import os
import tempfile

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
_XLA_CACHE = os.path.join(tempfile.gettempdir(), "oneadapt-jax-test-xla-cache")
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
# The processes the tests start (notebook kernels, command-line runs) share it too: the third
# notebook compiles what tests/test_adapt.py's runs compiled.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _XLA_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
  doctest_namespace["np"] = np
