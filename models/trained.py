"""Weights of the models trained in this repository: shipped, checksummed, loaded safely.

A trained model's parameters are plain arrays in `<name>.npz` (loaded with `allow_pickle=False`,
so no code is ever unpickled) next to `<name>.json`, its manifest: the npz's sha256, the
training seed and settings, and the held-out accuracy. The four models `oneadapt_jax.train`
trains ship with the package (`models/weights/`, 1.1 MB, trained from seed 0 by
`oneadapt train NAME`): a fresh machine needs no training. `oneadapt train NAME` writes to
`<cache>/trained/`, which is read first, so a model trained here (another seed, other
settings) replaces the shipped one until it is deleted. Loading checks the sha256 and refuses
a modified file by name; a missing one says what to run. Training is reproducible from the
seed (on one machine, to the bit; the slow test `test_shipped_weights_are_what_training_gives`
retrains each and compares).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import _assets

TRAIN_HINT = "run `make assets` (or `oneadapt train {name}`) once to train it (a few minutes)"


#: The weights shipped with the package (`oneadapt train NAME` made each, seed 0).
SHIPPED = pathlib.Path(__file__).parent / "weights"


def weights_path(name: str) -> pathlib.Path:
  """Where `oneadapt train` writes `name`'s weights: the cache, read before the shipped ones."""
  return _assets.cache_dir() / "trained" / f"{name}.npz"


def source_path(name: str) -> pathlib.Path:
  """The weights `name` loads from: the cache's where a training wrote a manifest there, else
  the shipped ones, else the cache's (missing: the errors say what to run)."""
  cached = weights_path(name)
  shipped = SHIPPED / f"{name}.npz"
  if cached.with_suffix(".json").exists() or not shipped.with_suffix(".json").exists():
    return cached
  return shipped


def manifest(name: str) -> dict:
  """The manifest of a trained model (seed, settings, held-out accuracy, sha256)."""
  path = source_path(name).with_suffix(".json")
  if not path.exists():
    raise _assets.AssetMissingError(
        f"trained model {name!r} is neither shipped ({SHIPPED}) nor in the cache ({path}); "
        f"{TRAIN_HINT.format(name=name)}")
  return json.loads(path.read_text())


def _flat(model: nnx.Module) -> dict[str, np.ndarray]:
  return {"/".join(map(str, path)): np.asarray(variable.get_value())
          for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def save(name: str, model: nnx.Module, info: dict) -> pathlib.Path:
  """Writes the model's parameters and its manifest (atomically: weights first)."""
  target = weights_path(name)
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".npz", delete=False) as tmp:
    np.savez(tmp, **_flat(model))
  os.replace(tmp.name, target)
  info = {**info, "sha256": _assets.sha256_of(target)}
  manifest_path = target.with_suffix(".json")
  manifest_path.with_suffix(".tmp").write_text(json.dumps(info, indent=2))
  os.replace(manifest_path.with_suffix(".tmp"), manifest_path)
  return target


def verified_path(name: str) -> pathlib.Path:
  """The weights of `name` (`source_path`), checked against their manifest's sha256.

  Raises:
    AssetMissingError: no manifest or no weights (the message says what to run).
    AssetIntegrityError: the weights' bytes are not the ones the manifest pins.
  """
  info = manifest(name)
  path = source_path(name)
  if not path.exists():
    raise _assets.AssetMissingError(
        f"trained model {name!r} has a manifest but no weights ({path}); "
        f"{TRAIN_HINT.format(name=name)}")
  return _assets.verify(path, info["sha256"])


def restore(name: str, model: nnx.Module) -> nnx.Module:
  """Loads the cached, verified parameters of `name` into `model` (built with the same shapes)."""
  path = verified_path(name)
  with np.load(path, allow_pickle=False) as stored:
    arrays = dict(stored)
  flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
  expected = {"/".join(map(str, path)): variable for path, variable in flat}
  if set(arrays) != set(expected):
    raise _assets.AssetIntegrityError(
        f"{path}: parameters {sorted(set(arrays) ^ set(expected))} do not match the "
        f"{type(model).__name__} architecture; delete it and {TRAIN_HINT.format(name=name)}")
  for key, variable in expected.items():
    if arrays[key].shape != variable.get_value().shape:
      raise _assets.AssetIntegrityError(
          f"{path}: {key} has shape {arrays[key].shape}, the model wants "
          f"{variable.get_value().shape}; delete it and {TRAIN_HINT.format(name=name)}")
    variable.set_value(jnp.asarray(arrays[key]))
  return model
