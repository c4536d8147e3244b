"""Real aerial LiDAR: laspy's autzen_trim.laz (110 000 points, Autzen Stadium, Oregon), in tiles.

The file is a test file of laspy 2.7.0's source distribution, taken out of the pinned sdist at
set-up and verified by sha256 (`oneadapt fetch`); it is read with laspy and lazrs (LAZ). Its
points carry a ground / not-ground classification (LAS classes 2 and 1), which the PointNet
model (`models.PointNet`) learns.

A tile is an `80 m x 80 m` square of the survey with at least `POINTS` points, as a
`knobs.PointCloud` of exactly `POINTS` of them, evenly spread over the file's (acquisition)
order: points `float32 [POINTS, 6]` (x and y from the tile's corner, z above the survey's datum
of 400 m, in metres; intensity scaled to `[0, 1]`; return number and number of returns over 4),
mask all ones. Tiles west of `SPLIT_X` train the
model; the others, in a serpentine flight order, are the stream adapted over (one tile per
second).
"""

from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np

import knobs
import models

_LASPY = models.Distribution(
    requirement="laspy==2.7.0", filename="laspy-2.7.0.tar.gz",
    sha256="f56feb5445e75d6ff12ee814aab6a35339290e75264ff277c6bf553f3025a3f5", sdist=True)
AUTZEN = models.Asset(
    "autzen_trim.laz", _LASPY, "laspy-2.7.0/tests/data/autzen_trim.laz",
    "75867b3e75cfc3c2e96da9f753c04c9fbaa6a59468dea13e2859f3109b38bd66",
    "BSD-2-Clause (laspy test data)")
TILE = 80.0  # metres
POINTS = 1024  # per tile
DATUM = 400.0  # metres: z is stored above this
SPLIT_X = 10  # tile columns 0..9 train the model
GROUND = 2  # LAS class


@dataclasses.dataclass(frozen=True)
class Tile:
  """One tile: `cloud` (`PointCloud` as NumPy), `labels` (1: ground, per point) and where
  it lies (`column`, `row` in tiles; `origin` in survey metres)."""

  cloud: knobs.PointCloud
  labels: np.ndarray
  column: int
  row: int
  origin: tuple[float, float]


def fetch() -> dict:
  return {AUTZEN.name: models.fetch(AUTZEN)}


@functools.cache
def read_points() -> dict[str, np.ndarray]:
  """Every point of the verified file as arrays (x, y, z, intensity, returns, class)."""
  try:
    import laspy
  except ImportError as err:  # pragma: no cover - a core dependency of the lidar extra
    raise ImportError("reading LiDAR needs laspy and lazrs: pip install oneadapt-jax[lidar]") \
        from err
  las = laspy.read(models.asset_path(AUTZEN))
  return {"x": np.asarray(las.x), "y": np.asarray(las.y), "z": np.asarray(las.z),
          "intensity": np.asarray(las.intensity, np.float64),
          "return_number": np.asarray(las.return_number, np.float64),
          "number_of_returns": np.asarray(las.number_of_returns, np.float64),
          "classification": np.asarray(las.classification)}


@functools.cache
def tiles() -> tuple[Tile, ...]:
  """The survey cut into `TILE`-metre squares, those with at least `POINTS` points, column-major
  in a serpentine (flight) order."""
  p = read_points()
  x0, y0 = np.floor(p["x"].min() / TILE) * TILE, np.floor(p["y"].min() / TILE) * TILE
  column = ((p["x"] - x0) // TILE).astype(int)
  row = ((p["y"] - y0) // TILE).astype(int)
  intensity_scale = np.percentile(p["intensity"], 99)
  out = []
  for c in range(column.max() + 1):
    rows = range(row.max() + 1) if c % 2 == 0 else range(row.max(), -1, -1)
    for r in rows:
      idx = np.flatnonzero((column == c) & (row == r))
      if len(idx) < POINTS:
        continue
      idx = idx[np.linspace(0, len(idx) - 1, POINTS).round().astype(int)]
      origin = (x0 + c * TILE, y0 + r * TILE)
      features = np.column_stack([
          p["x"][idx] - origin[0], p["y"][idx] - origin[1], p["z"][idx] - DATUM,
          np.minimum(p["intensity"][idx] / intensity_scale, 1.0),
          p["return_number"][idx] / 4.0, p["number_of_returns"][idx] / 4.0])
      labels = (p["classification"][idx] == GROUND).astype(np.int32)
      out.append(Tile(knobs.PointCloud(features.astype(np.float32), np.ones(POINTS, np.float32)),
                      labels, c, r, origin))
  return tuple(out)


def split() -> tuple[list[Tile], list[Tile]]:
  """`(training tiles, held-out tiles)`: west and east of tile column `SPLIT_X`."""
  all_tiles = tiles()
  return ([t for t in all_tiles if t.column < SPLIT_X],
          [t for t in all_tiles if t.column >= SPLIT_X])


def encode_laz(points: np.ndarray, step: float) -> bytes:
  """The points (`[n, 6]` tile features, already on the `step` grid) as a real LAZ file whose
  scale is `step` (what a sender would transmit); returns its bytes."""
  import laspy

  header = laspy.LasHeader(point_format=0, version="1.2")
  header.scales = np.array([step, step, step])
  header.offsets = np.array([0.0, 0.0, 0.0])
  las = laspy.LasData(header)
  las.x, las.y, las.z = points[:, 0], points[:, 1], points[:, 2]
  las.intensity = np.round(points[:, 3] * 65535).astype(np.uint16)
  las.return_number = np.round(points[:, 4] * 4).astype(np.uint8)
  las.number_of_returns = np.round(points[:, 5] * 4).astype(np.uint8)
  buffer = io.BytesIO()
  las.write(buffer, do_compress=True)
  return buffer.getvalue()
