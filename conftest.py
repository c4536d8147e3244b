"""Test-wide strictness (equinox-style): no silent dtype or rank promotion anywhere."""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
  doctest_namespace["np"] = np
