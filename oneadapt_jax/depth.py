"""Depth video rendered from real LiDAR: a range camera flying over the autzen survey.

The survey is `oneadapt_jax.lidar`'s autzen_trim.laz (Autzen Stadium, Eugene, Oregon). Its
coordinates are in international feet (the ground lies at 407 to 432, Eugene's 124 to 132 m
above sea level), so the renderer converts them to metres. A pinhole range camera
(`Camera`: `WIDTH x HEIGHT` pixels, `FOV` degrees across, pitched `PITCH` degrees down) flies
at `ALTITUDE` metres above the survey's median ground, level, at `SPEED` m/s, `FPS` frames a
second. Each frame is a z-buffer of the survey's points (`render`): every point is splatted as a
square as wide as the ground it stands for (`SPACING` metres, about the survey's point spacing,
at least one pixel), and each pixel keeps the nearest point's depth along the optical axis in
millimetres (`uint16`, as depth sensors write it: 0 where nothing lies within `MAX_RANGE`, the
range 16-bit millimetres can hold) and that point's class (1 ground, 0 not, 255 no return;
`survey` says what ground is).

Flights (`flight`): the stream (`stream()`) is two passes of `STREAM_SECONDS` over the survey's
held-out east (east of the line `lidar.SPLIT_X` tile columns in, which splits the LiDAR
workload too): eastward from two seconds before its view reaches the line, then westward from
the east edge, so that it crosses terrain the depth model never saw. Training frames
(`training_poses`) are single poses over the west, heading east, west, north or south at 25 to
45 m, whose whole view stays west of the line.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools

import numpy as np

from oneadapt_jax import lidar

FEET = 0.3048  # metres
WIDTH, HEIGHT = 64, 48  # pixels
FOV = 70.0  # degrees, horizontal
PITCH = 50.0  # degrees below the horizon
ALTITUDE = 35.0  # metres above the median ground
SPEED = 5.0  # metres a second
FPS = 10
MAX_RANGE = 65.535  # metres: the largest depth 16-bit millimetres hold
NEAR = 0.5  # metres
SPACING = 0.75  # metres: about the survey's point spacing (1.8 points a square metre)
MAX_SPLAT = 3  # pixels either side
STREAM_SECONDS = 20.0  # each of the stream's two passes
STREAM_LINES = (258_800.0, 258_785.0)  # metres north: the passes' lines, over the dense band
NO_RETURN = 255  # the class of a pixel with no return
GROUND_BAND = 1.0  # metres above the ground surface that still count as ground


@dataclasses.dataclass(frozen=True)
class Camera:
  """A pose: `position` (x, y, z in metres, the survey's frame), `heading` (radians from +x,
  counter-clockwise), `pitch` (degrees below the horizon)."""

  position: tuple[float, float, float]
  heading: float
  pitch: float = PITCH

  def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(forward, right, up)` unit vectors."""
    p, h = np.radians(self.pitch), self.heading
    forward = np.array([np.cos(p) * np.cos(h), np.cos(p) * np.sin(h), -np.sin(p)])
    right = np.array([np.sin(h), -np.cos(h), 0.0])
    return forward, right, np.cross(right, forward)


def focal() -> float:
  """The focal length in pixels."""
  return WIDTH / 2 / np.tan(np.radians(FOV / 2))


@functools.cache
def survey() -> tuple[np.ndarray, np.ndarray]:
  """`(points float64 [N, 3] in metres, ground bool [N])` of the whole survey.

  The survey marks only some of its returns on open ground as ground (LAS class 2); most of
  the others there are unclassified, so the raw classes speckle every lawn. A point here is
  ground when it lies within `GROUND_BAND` metres of the ground surface the class-2 points span
  (linear interpolation between them, the nearest one outside their hull): what a drone needs
  to tell apart, open ground against trees, buildings and stands."""
  from scipy import interpolate

  p = lidar.read_points()
  xyz = np.column_stack([p["x"], p["y"], p["z"]]) * FEET
  marked = p["classification"] == lidar.GROUND
  surface = interpolate.griddata(xyz[marked, :2], xyz[marked, 2], xyz[:, :2], method="linear")
  outside = np.isnan(surface)
  surface[outside] = interpolate.griddata(xyz[marked, :2], xyz[marked, 2], xyz[outside, :2],
                                          method="nearest")
  return xyz, (xyz[:, 2] - surface < GROUND_BAND) | marked


def project(points: np.ndarray, camera: Camera):
  """Each point's `(column, row, depth)` in the camera (depth along the optical axis, metres;
  columns and rows continuous, pixel `(r, c)` covering `[r, r+1) x [c, c+1)`)."""
  forward, right, up = camera.axes()
  d = points - np.asarray(camera.position)
  depth = d @ forward
  with np.errstate(divide="ignore", invalid="ignore"):
    column = WIDTH / 2 + focal() * (d @ right) / depth
    row = HEIGHT / 2 - focal() * (d @ up) / depth
  return column, row, depth


def splat_radius(depth: np.ndarray) -> np.ndarray:
  """Half-width in pixels of the square a point at `depth` covers: `SPACING` metres wide."""
  return np.clip(np.round(focal() * SPACING / 2 / np.maximum(depth, NEAR)), 0, MAX_SPLAT
                 ).astype(int)


def render(camera: Camera, points: np.ndarray | None = None, ground: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
  """One frame: `(depth uint16 [HEIGHT, WIDTH] in millimetres, class uint8 [HEIGHT, WIDTH])` of
  `points` (`[N, 3]` metres) and their `ground` flags (`[N]`), by default the survey's."""
  if points is None:
    points, ground = survey()
  points, ground = np.asarray(points, np.float64), np.asarray(ground)
  if points.ndim != 2 or points.shape[1] != 3 or ground.shape != (len(points),):
    raise ValueError(f"render needs points [N, 3] and ground [N], got {points.shape} and "
                     f"{ground.shape}")
  column, row, depth = project(points, camera)
  seen = (depth > NEAR) & (depth <= MAX_RANGE)
  margin = MAX_SPLAT + 1
  seen &= (column > -margin) & (column < WIDTH + margin) & (row > -margin) & (row < HEIGHT + margin)
  column, row, depth, label = (np.floor(column[seen]).astype(int), np.floor(row[seen]).astype(int),
                               depth[seen], ground[seen])
  radius = splat_radius(depth)
  pixels, depths, labels = [], [], []
  for dr in range(-MAX_SPLAT, MAX_SPLAT + 1):
    for dc in range(-MAX_SPLAT, MAX_SPLAT + 1):
      r, c = row + dr, column + dc
      keep = (radius >= max(abs(dr), abs(dc))) & (r >= 0) & (r < HEIGHT) & (c >= 0) & (c < WIDTH)
      pixels.append(r[keep] * WIDTH + c[keep])
      depths.append(depth[keep])
      labels.append(label[keep])
  pixels, depths, labels = map(np.concatenate, (pixels, depths, labels))
  order = np.lexsort((depths, pixels))  # by pixel, nearest first
  first = order[np.unique(pixels[order], return_index=True)[1]]
  out_depth = np.zeros(HEIGHT * WIDTH, np.uint16)
  out_class = np.full(HEIGHT * WIDTH, NO_RETURN, np.uint8)
  out_depth[pixels[first]] = np.round(depths[first] * 1000).astype(np.uint16)
  out_class[pixels[first]] = labels[first]
  return out_depth.reshape(HEIGHT, WIDTH), out_class.reshape(HEIGHT, WIDTH)


@functools.cache
def extent() -> tuple[float, float, float, float]:
  """`(x min, x max, y min, y max)` of the survey, metres."""
  points, _ = survey()
  return points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max()


@functools.cache
def split_x() -> float:
  """The split line (metres): `lidar.SPLIT_X` tile columns from the survey's west edge."""
  x0 = np.floor(lidar.read_points()["x"].min() / lidar.TILE) * lidar.TILE
  return (x0 + lidar.SPLIT_X * lidar.TILE) * FEET


@functools.cache
def ground_level() -> float:
  points, ground = survey()
  return float(np.median(points[ground, 2]))


def flight(start: tuple[float, float], heading: float, seconds: float, *,
           altitude: float = ALTITUDE) -> list[Camera]:
  """The poses of a level pass at `SPEED` from `start` (x, y metres), `FPS` a second."""
  steps = round(seconds * FPS)
  direction = np.array([np.cos(heading), np.sin(heading)])
  z = ground_level() + altitude
  return [Camera((*(np.asarray(start) + direction * SPEED * i / FPS), z), heading)
          for i in range(steps)]


def render_flight(poses: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
  """`(depth uint16 [T, H, W], class uint8 [T, H, W])` of a flight."""
  frames = [render(pose) for pose in poses]
  return np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames])


def stream_poses() -> list[Camera]:
  """The stream: a pass eastward from two seconds before the view reaches the split line, then
  one westward from the survey's east edge, along the dense band of the held-out east
  (`STREAM_LINES`)."""
  _, x1, _, _ = extent()
  ahead = ALTITUDE / np.tan(np.radians(PITCH))  # where the optical axis meets the ground
  east = flight((split_x() - ahead - SPEED * 2.0, STREAM_LINES[0]), 0.0, STREAM_SECONDS)
  west = flight((x1, STREAM_LINES[1]), np.pi, STREAM_SECONDS)
  return east + west


@functools.cache
def stream() -> tuple[np.ndarray, np.ndarray]:
  """The stream's `(depth uint16 [T, H, W], class uint8 [T, H, W])` (`stream_poses`)."""
  return render_flight(stream_poses())


def view_x(pose: Camera) -> tuple[float, float]:
  """`(west, east)`: bounds on the x (metres) of anything `pose` can see within `MAX_RANGE`."""
  side = MAX_RANGE * np.tan(np.radians(FOV / 2)) * abs(np.sin(pose.heading))
  reach = MAX_RANGE * np.cos(pose.heading)
  x = pose.position[0]
  return x + min(reach, 0.0) - side, x + max(reach, 0.0) + side


def held_out(poses: list[Camera]) -> np.ndarray:
  """`bool [T]`: the poses whose whole view lies east of the split line."""
  return np.asarray([view_x(pose)[0] >= split_x() for pose in poses])


def training_poses(rng: np.random.Generator, count: int, *, min_returns: float = 0.5
                   ) -> list[Camera]:
  """`count` poses over the west whose whole view stays west of the split line: random
  positions, the four headings, altitudes of 25 to 45 m; poses that see returns on fewer than
  `min_returns` of the pixels (off the survey's edge) are drawn again."""
  x0, _, y0, y1 = extent()
  poses = []
  while len(poses) < count:
    heading = float(rng.choice([0.0, np.pi / 2, np.pi, 3 * np.pi / 2]))
    x, y = rng.uniform(x0, split_x()), rng.uniform(y0, y1)
    pose = Camera((x, y, ground_level() + rng.uniform(25.0, 45.0)), heading)
    if view_x(pose)[1] < split_x() and np.mean(render(pose)[0] > 0) >= min_returns:
      poses.append(pose)
  return poses


# --------------------------------------------------------------------------- the codec


def encode_ffv1(codes: np.ndarray) -> tuple[bytes, list[bytes]]:
  """Codes `uint16 [T, h, w]` as one FFV1 stream (lossless, 16-bit grey, intra only):
  `(extradata, one packet a frame)`."""
  import av

  num, h, w = codes.shape
  encoder = av.CodecContext.create("ffv1", "w")
  encoder.width, encoder.height, encoder.pix_fmt = w, h, "gray16le"
  encoder.time_base = fractions.Fraction(1, FPS)
  encoder.options = {"threads": "1"}
  encoder.open()
  packets = []
  for t in range(num):
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(codes[t], np.uint16),
                                       format="gray16le")
    frame.pts = t
    packets.extend(encoder.encode(frame))
  packets.extend(encoder.encode(None))
  return bytes(encoder.extradata or b""), [bytes(p) for p in packets]


def decode_ffv1(extradata: bytes, packets: list[bytes], shape: tuple[int, int]) -> np.ndarray:
  """The frames `uint16 [T, h, w]` of an FFV1 stream (`encode_ffv1`'s output)."""
  import av

  decoder = av.CodecContext.create("ffv1", "r")
  decoder.width, decoder.height, decoder.pix_fmt = shape[1], shape[0], "gray16le"
  if extradata:
    decoder.extradata = extradata
  out = []
  for payload in [*packets, None]:
    for frame in decoder.decode(None if payload is None else av.Packet(payload)):
      out.append(frame.to_ndarray())
  return np.stack(out)


def coded_size(height: int, width: int, resolution: float) -> tuple[int, int]:
  """The size a depth frame is coded at for a scale factor (at least 4 pixels a side)."""
  return max(4, round(height * resolution)), max(4, round(width * resolution))


def _resize(frame: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
  """A `uint16 [h, w]` frame resized with FFmpeg's scaler (as the video sender does)."""
  import av

  if frame.shape == size:
    return frame
  picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray16le")
  return picture.reformat(width=size[1], height=size[0], interpolation=interpolation).to_ndarray()


@dataclasses.dataclass(frozen=True)
class Sent:
  """One depth segment through the real sender: `frames` (`float32 [T, H, W, 1]`, what the
  server decodes, scaled back to the input's size, dropped frames holding the last sent one),
  the FFV1 stream's `num_bytes`, and which frames were `sent`."""

  frames: np.ndarray
  num_bytes: int
  sent: np.ndarray


def send(frames: np.ndarray, config, *, source_fps: float = FPS) -> Sent:
  """Sends depth frames (`float32 [T, H, W, 1]` in `[0, 1]`, over `MAX_RANGE`) at a
  configuration of `resolution`, `frame_rate` (fps) and `depth_quantization` (bits): each frame
  kept by the frame rate (`knobs.frames_sent`) is scaled down (area), quantized to `b` bits and
  coded with FFV1, losslessly; the server decodes, scales back up (bilinear) and holds."""
  import knobs

  frames = np.asarray(frames)
  knobs.check_depth(frames)
  missing = {"resolution", "frame_rate", "depth_quantization"} - set(config)
  if missing:
    raise ValueError(f"a depth configuration needs {', '.join(sorted(missing))}; got {config}")
  num, height, width, _ = frames.shape
  bits, rate = round(float(config["depth_quantization"])), float(config["frame_rate"])
  resolution = float(config["resolution"])
  if not 2 <= bits <= 16:
    raise ValueError(f"depth_quantization must be 2 to 16 bits, got {config['depth_quantization']}")
  if not 0 < rate <= source_fps:
    raise ValueError(f"frame_rate must be in (0, {source_fps:g}] fps, got {rate:g}")
  if not 0 < resolution <= 1:
    raise ValueError(f"resolution must be in (0, 1], got {resolution:g}")
  sent = np.asarray(knobs.frames_sent(num, rate / source_fps))
  size = coded_size(height, width, resolution)
  millimetres = np.round(frames[..., 0] * 65535).astype(np.uint16)
  small = np.stack([_resize(millimetres[t], size, "AREA") for t in np.flatnonzero(sent)])
  codes, levels = knobs.depth_codes(small / 65535, bits)  # the knob's own rule
  codes = codes.astype(np.uint16)
  extradata, packets = encode_ffv1(codes)
  decoded = decode_ffv1(extradata, packets, size)
  back = [_resize(np.round(c / levels * 65535).astype(np.uint16), (height, width), "BILINEAR")
          for c in decoded]
  held = np.cumsum(sent) - 1
  out = np.stack(back)[held].astype(np.float32)[..., None] / 65535
  return Sent(out, len(extradata) + sum(map(len, packets)), sent)
