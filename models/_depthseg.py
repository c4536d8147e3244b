"""DepthSeg: per-pixel ground segmentation of depth frames, trained here on rendered LiDAR.

`DepthSeg(frames)` takes depth video `float32 [..., H, W, 1]` in `[0, 1]` (range over the
sensor's maximum range, 0 where there was no return) and returns per-pixel class logits
`[..., H, W, 2]` (not ground, ground). A small encoder-decoder: two 3x3 convolutions at full
resolution, three at half resolution with dilations 1, 2 and 4 (a receptive field of about 40
pixels, enough to see a tree against the ground plane around it), a nearest-neighbour
upsampling, a skip connection from the full-resolution features and a 1x1 classifier. Besides
the depth, each pixel sees whether it has a return and its row (how far below the horizon it
looks, which sets how depth should grow across flat ground).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class DepthSeg(nnx.Module):
  def __init__(self, classes: int = 2, *, width: int = 16, rngs: nnx.Rngs):
    def conv(cin, cout, **kw):
      return nnx.Conv(cin, cout, (3, 3), padding="SAME", rngs=rngs, **kw)
    self.stem1 = conv(3, width)
    self.stem2 = conv(width, width)
    self.down = conv(width, 2 * width, strides=(2, 2))
    self.context1 = conv(2 * width, 2 * width, kernel_dilation=(2, 2))
    self.context2 = conv(2 * width, 2 * width, kernel_dilation=(4, 4))
    self.fuse = conv(3 * width, width)
    self.head = nnx.Conv(width, classes, (1, 1), rngs=rngs)

  def __call__(self, frames: jax.Array) -> jax.Array:
    lead, (h, w) = frames.shape[:-3], frames.shape[-3:-1]
    x = frames.reshape(-1, h, w, 1)
    row = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, h)[None, :, None, None], x.shape)
    x = jnp.concatenate([x * 4.0, (x > 0).astype(x.dtype), row], axis=-1)
    full = nnx.relu(self.stem2(nnx.relu(self.stem1(x))))
    half = nnx.relu(self.down(full))
    half = nnx.relu(self.context2(nnx.relu(self.context1(half))))
    up = jnp.repeat(jnp.repeat(half, 2, axis=1), 2, axis=2)[:, :h, :w]
    logits = self.head(nnx.relu(self.fuse(jnp.concatenate([full, up], axis=-1))))
    return logits.reshape(*lead, h, w, -1)
