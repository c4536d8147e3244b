"""Which codec is realistic for depth video: FFV1 on b-bit codes against x264 on 8-bit depth.

Over segments of the depth stream (`oneadapt_jax.depth.stream`, 64x48 16-bit millimetres at
10 fps), each codec's bytes and what it does to the depth: the mean absolute error in
millimetres over pixels with a return, and the share of pixels whose depth moves by more than
half a metre (flying pixels: a lossy codec smears a tree's edge into the ground behind it, and a
no-return pixel into a near one). FFV1 codes the `b`-bit codes losslessly (16-bit grey), so its
only error is the quantization; PyAV's x264 is an 8-bit build, so depth goes to 8 bits first
(the luma plane), then to x264 at a constant QP (QP 0 is lossless).

    python benchmarks/depth_codec.py [--segments 0 10 20 30] [--figure benchmarks/depth_stream.png]

Prints the table with the machine and writes `depth_codec.json`; with `--figure`, a picture of
the stream: depth, the true classes, and the trained segmenter's classes at the best quality and
through the sender at a cheap configuration.
"""

from __future__ import annotations

import argparse
import fractions
import json
import pathlib

import numpy as np
from _common import machine  # benchmarks/ runs as a script folder

import knobs
from oneadapt_jax import depth


def x264_round_trip(codes: np.ndarray, qp: int) -> tuple[int, np.ndarray]:
  """8-bit codes `uint8 [T, h, w]` through x264 (luma, grey chroma) at `qp`: bytes, decoded."""
  import av

  num, h, w = codes.shape
  encoder = av.CodecContext.create("libx264", "w")
  encoder.width, encoder.height, encoder.pix_fmt = w, h, "yuv420p"
  encoder.time_base = fractions.Fraction(1, depth.FPS)
  encoder.options = {"qp": str(qp), "preset": "medium", "threads": "1"}
  encoder.open()
  packets = []
  for t in range(num):
    planes = np.concatenate([codes[t], np.full((h // 2, w), 128, np.uint8)])  # I420 layout
    frame = av.VideoFrame.from_ndarray(planes.reshape(h * 3 // 2, w), format="yuv420p")
    frame.pts = t
    packets.extend(encoder.encode(frame))
  packets.extend(encoder.encode(None))
  decoder = av.CodecContext.create("h264", "r")
  decoded = [f.to_ndarray()[:h] for p in [*packets, None] for f in decoder.decode(p)]
  return sum(len(bytes(p)) for p in packets), np.stack(decoded)


def errors(millimetres: np.ndarray, back: np.ndarray) -> tuple[float, float]:
  """`(mean |error| in mm over the pixels with a return, share of them off by > 0.5 m)`."""
  valid = millimetres > 0
  off = np.abs(back.astype(np.float64) - millimetres)[valid]
  return float(off.mean()), float(np.mean(off > 500))


def figure(path: pathlib.Path, frames_at=(5, 95, 215, 335)) -> pathlib.Path:
  """Depth, true classes and `DepthSeg`'s classes (best quality; 8 bits, half resolution)."""
  import jax
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from oneadapt_jax.workloads import depth as depth_kind

  frames, classes = depth.stream()
  model = jax.jit(depth_kind.load_model())
  cheap = {"resolution": 0.5, "frame_rate": 10.0, "depth_quantization": 8.0}
  fig, axes = plt.subplots(4, len(frames_at), figsize=(3 * len(frames_at), 8.4))
  rows = ("depth (m)", "true class", "DepthSeg, best quality", "DepthSeg, 8 bits, half size")
  held_out = depth.held_out(depth.stream_poses())
  for j, t in enumerate(frames_at):
    x = frames[t:t + 1, ..., None].astype(np.float32) / 65535
    seen = frames[t] > 0
    shown = (frames[t] / 1000.0, np.where(seen, classes[t], np.nan))
    for k, received in enumerate((x, depth.send(x, cheap).frames)):
      probabilities = np.asarray(model(received))[0]
      shown += (np.where(probabilities.sum(-1) > 0.5, probabilities.argmax(-1), np.nan),)
    for i, image in enumerate(shown):
      ax = axes[i][j]
      ax.imshow(np.where(seen, image, np.nan) if i == 0 else image,
                cmap="viridis" if i == 0 else "coolwarm", vmin=None if i == 0 else 0,
                vmax=None if i == 0 else 1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if j == 0:
        ax.set_ylabel(rows[i], fontsize=8)
    axes[0][j].set_title(f"frame {t}" + (" (held out)" if held_out[t] else ""), fontsize=9)
  fig.suptitle("Depth stream over autzen: ground (red) and not ground (blue); white: no return",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--segments", type=int, nargs="+", default=[0, 10, 20, 30])
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  parser.add_argument("--figure", type=pathlib.Path, default=None,
                      help="also draw the stream and the segmenter's output here (PNG)")
  args = parser.parse_args(argv)
  if args.figure is not None:
    print(f"figure: {figure(args.figure)}")
  frames, _ = depth.stream()
  rows = {}
  for index in args.segments:
    millimetres = frames[index * depth.FPS:(index + 1) * depth.FPS]
    for bits in (16, 12, 10, 8, 6, 4):
      codes, levels = knobs.depth_codes(millimetres / 65535, bits)
      extradata, packets = depth.encode_ffv1(codes.astype(np.uint16))
      back = depth.decode_ffv1(extradata, packets, codes.shape[1:]).astype(np.float64)
      rows.setdefault(f"FFV1, {bits} bits", []).append(
          (len(extradata) + sum(map(len, packets)), *errors(millimetres, back / levels * 65535)))
    codes8 = knobs.depth_codes(millimetres / 65535, 8)[0].astype(np.uint8)
    for qp in (0, 10, 20, 30):
      num_bytes, back = x264_round_trip(codes8, qp)
      rows.setdefault(f"x264 QP {qp}, 8 bits", []).append(
          (num_bytes, *errors(millimetres, back.astype(np.float64) / 255 * 65535)))
  print(f"# Depth codecs, segments {args.segments} of the depth stream; {machine()}")
  print(f"{'codec':>20} {'bytes/segment':>13} {'mean |error| (mm)':>18} {'> 0.5 m':>8}")
  table = []
  for name, values in rows.items():
    num_bytes, mean_error, flying = np.mean(values, axis=0)
    table.append({"codec": name, "bytes": num_bytes, "mean_error_mm": mean_error,
                  "flying": flying})
    print(f"{name:>20} {num_bytes:>13.0f} {mean_error:>18.1f} {100 * flying:>7.2f}%")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "depth_codec.json").write_text(json.dumps(
      {"machine": machine(), "segments": args.segments, "rows": table}, indent=1))
  return table


if __name__ == "__main__":
  main()
