"""Differentiable configuration knobs for streaming analytics.

A knob is a `NamedTuple` of pure functions, `init() -> setting`, `apply(setting, data) -> data`
and `cost(setting, data) -> scalar`, with the discrete `values` a real system can use. Settings
live in `[0, 1]`, `1.0` being the best quality. Video is `float32 [..., T, H, W, C]` in `[0, 1]`;
audio `float32 [..., T]` in `[-1, 1]`; a point cloud a `PointCloud(points [..., N, F], mask [..., N])`.

This package depends on jax and numpy only, so it can be imported alone to prototype a knob.

Example:
  >>> import jax, jax.numpy as jnp, knobs
  >>> knob = knobs.chain(resolution=knobs.resolution(), qp=knobs.quantization())
  >>> frames = jax.random.uniform(jax.random.key(0), (4, 32, 48, 3))
  >>> out, vjp = jax.vjp(lambda s: knob.apply(s, frames), knob.init())
  >>> out.shape
  (4, 32, 48, 3)
"""

from knobs._audio import bit_depth as bit_depth
from knobs._audio import check_audio as check_audio
from knobs._audio import chunk_drop as chunk_drop
from knobs._audio import chunk_ids as chunk_ids
from knobs._audio import chunk_levels as chunk_levels
from knobs._audio import chunks_sent as chunks_sent
from knobs._audio import sample_rate as sample_rate
from knobs._audio_codec import audio_bitrate as audio_bitrate
from knobs._base import Knob as Knob
from knobs._base import KnobApplyFn as KnobApplyFn
from knobs._base import KnobCostFn as KnobCostFn
from knobs._base import KnobInitFn as KnobInitFn
from knobs._base import as_setting as as_setting
from knobs._base import chain as chain
from knobs._base import check_video as check_video
from knobs._base import ladder as ladder
from knobs._base import ladder_index as ladder_index
from knobs._base import ladder_round as ladder_round
from knobs._base import ladder_to_physical as ladder_to_physical
from knobs._base import scale_cost as scale_cost
from knobs._codec import YCbCr420 as YCbCr420
from knobs._codec import quantization as quantization
from knobs._codec import roi_quality as roi_quality
from knobs._codec import ycbcr420 as ycbcr420
from knobs._depth import check_depth as check_depth
from knobs._depth import depth_codes as depth_codes
from knobs._depth import depth_levels as depth_levels
from knobs._depth import depth_quantization as depth_quantization
from knobs._depth import depth_stream_bytes as depth_stream_bytes
from knobs._points import PointCloud as PointCloud
from knobs._points import check_points as check_points
from knobs._points import point_density as point_density
from knobs._points import point_quantization as point_quantization
from knobs._points import point_range as point_range
from knobs._points import points_sent as points_sent
from knobs._points import priorities as point_priorities
from knobs._resolution import resolution as resolution
from knobs._temporal import frame_filter as frame_filter
from knobs._temporal import frame_filter_sent as frame_filter_sent
from knobs._temporal import frame_rate as frame_rate
from knobs._temporal import frames_sent as frames_sent

__all__ = (
    "Knob",
    "KnobApplyFn",
    "KnobCostFn",
    "KnobInitFn",
    "PointCloud",
    "YCbCr420",
    "as_setting",
    "audio_bitrate",
    "bit_depth",
    "chain",
    "check_audio",
    "check_depth",
    "check_points",
    "check_video",
    "chunk_drop",
    "chunk_ids",
    "chunk_levels",
    "chunks_sent",
    "depth_codes",
    "depth_levels",
    "depth_quantization",
    "depth_stream_bytes",
    "frame_filter",
    "frame_filter_sent",
    "frame_rate",
    "frames_sent",
    "ladder",
    "ladder_index",
    "ladder_round",
    "ladder_to_physical",
    "point_density",
    "point_priorities",
    "point_quantization",
    "point_range",
    "points_sent",
    "quantization",
    "resolution",
    "roi_quality",
    "sample_rate",
    "scale_cost",
    "ycbcr420",
)
