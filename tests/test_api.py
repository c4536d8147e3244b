"""Conventions every public callable keeps (dm_pix's api_test, for this project)."""

import inspect
import subprocess
import sys

import jax.numpy as jnp
import pytest

import knobs
import models
import oneadapt_jax
from oneadapt_jax import baselines, configs, core, experiment, workloads

PACKAGES = (knobs, models, oneadapt_jax, core, workloads, baselines, configs, experiment)


def _public(package):
  return [(name, getattr(package, name)) for name in package.__all__]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_names_exist_and_are_documented(package):
  assert package.__doc__
  for name, obj in _public(package):
    if callable(obj):
      assert inspect.getdoc(obj), f"{package.__name__}.{name} has no docstring"


@pytest.mark.parametrize("name, obj", [(n, o) for p in PACKAGES for n, o in _public(p)
                                       if inspect.isfunction(o)])
def test_signature_conventions(name, obj):
  params = inspect.signature(obj).parameters
  assert "rng" not in params, f"{name}: call the PRNG key `key` (JAX convention)"
  if "key" in params:
    assert list(params).index("key") == 0, f"{name}: `key` comes first"
  for p in params.values():
    if p.default is not inspect.Parameter.empty:
      assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), f"{name}: optional `{p.name}` keyword-only"


FACTORIES = [knobs.resolution, knobs.frame_rate, knobs.quantization, knobs.frame_filter,
             lambda: knobs.roi_quality((32, 32))]


@pytest.mark.parametrize("factory", FACTORIES)
def test_factories_return_knobs_whose_init_is_best_quality(factory):
  knob = factory()
  assert isinstance(knob, knobs.Knob)
  setting = knob.init()
  assert setting.dtype == jnp.float32 and bool(jnp.all(setting == 1.0))
  assert knob.name and knob.unit
  assert inspect.getdoc(factory) or factory.__name__ == "<lambda>"


def test_importing_knobs_stays_light():
  code = ("import sys, knobs; heavy = [m for m in sys.modules if m.split('.')[0] in "
          "('flax', 'av', 'tensorflow_datasets', 'tensorflow', 'optax', 'matplotlib', "
          "'skimage', 'models', 'oneadapt_jax')]; print(heavy); assert not heavy")
  result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
