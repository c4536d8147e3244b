"""Training the models this repository ships no weights for, reproducibly.

`python -m oneadapt_jax.train kws|pointnet|depthseg|asr [--seed 0]` (or `oneadapt train ...`;
`make assets` trains whichever is missing) trains on 2 CPU cores in a few minutes, reports the held-out
accuracy and saves the weights with their manifest (`models.trained`): the seed fixes the
initialisation, the noise and the batch order.

- `kws`: `models.KeywordSpotter` on espeak-ng speech (`oneadapt_jax.speech`) from the training
  voices, with fresh noise (white or brown, SNR -5..40 dB), a random shift of up to 0.1 s, a
  random gain and, for half the clips, the real audio sender (`oneadapt_jax.workloads.audio.send`) at a random
  configuration of the knobs' ladders, every step; held out: the other voices, noisy at SNR
  0..30 dB, sent at the best quality.
- `pointnet`: `models.PointNet` per-point ground classification on the autzen LiDAR tiles
  (`oneadapt_jax.lidar`) west of the split line, with random rotations about z, flips and, for
  half the tiles, random thinning to a density of 0.2..1; held out: the tiles east of it.
- `depthseg`: `models.DepthSeg` per-pixel ground segmentation of depth frames rendered over the
  survey's west (`oneadapt_jax.depth.training_poses`), half of each batch through the real depth
  sender (`oneadapt_jax.workloads.depth.send`) at a random configuration; held out: the stream's
  frames over the east, at the best quality, against the true classes.
- `asr`: `models.SpeechRecognizer`, word-level CTC on espeak-ng sentences
  (`oneadapt_jax.sentences`) in the training voices, with fresh noise (SNR -5..40 dB) and a random
  gain; a quarter of each batch from a pool sent once through the real speech sender (Opus at a
  random bitrate, chunks dropped by a random threshold); held out: 240 sentences in the other
  voices, noisy at SNR 0..30 dB, scored by word error rate against the words spoken.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm, trange

import knobs
import models
from models import trained

__all__ = ("ensure", "train", "train_asr", "train_depthseg", "train_kws", "train_pointnet")


def _fit(model, batches, loss_fn, *, steps: int, learning_rate: float, progress: bool, desc: str):
  """Adam with cosine decay over `steps`; `batches(step)` gives each step's batch."""
  optimiser = nnx.Optimizer(model, optax.adamw(optax.cosine_decay_schedule(learning_rate, steps),
                                               weight_decay=1e-4), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimiser, batch):
    loss, grads = nnx.value_and_grad(loss_fn)(model, *batch)
    # optax's schedules mix the int32 step count with floats, which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
      optimiser.update(model, grads)
    return loss

  bar = trange(steps, desc=desc, disable=not progress)
  for i in bar:
    loss = step(model, optimiser, batches(i))
    if i % 50 == 0:
      bar.set_postfix(loss=f"{float(loss):.3f}")
  return model


def train_kws(seed: int = 0, *, steps: int = 800, batch: int = 64, progress: bool = True):
  """Trains the keyword spotter; returns `(model, info)` with the held-out accuracy."""
  from oneadapt_jax import speech
  from oneadapt_jax.workloads import audio as sent_audio

  audio, words, _ = speech.utterances(speech.TRAIN_VOICES, progress=progress)
  held_audio, held_words, _ = speech.utterances(speech.HELD_OUT_VOICES, progress=progress)
  rng = np.random.default_rng(seed)
  held_out = speech.noisy(held_audio, rng.uniform(0, 30, len(held_audio)), rng)
  model = models.KeywordSpotter(len(speech.WORDS), rngs=nnx.Rngs(seed))
  ladders = sent_audio.knob_chain().values  # name -> ladder, in sending order

  def batches(i):
    pick = rng.choice(len(audio), batch, replace=False)
    clips = np.stack([np.roll(c, int(s)) for c, s in
                      zip(audio[pick], rng.integers(-1600, 1601, batch))])
    clips = clips * rng.uniform(0.3, 1.8, (batch, 1))
    clips = speech.noisy(np.clip(clips, -1, 1), rng.uniform(-5, 40, batch), rng)
    # Half the clips come through the real sender at a random configuration of the audio
    # knobs, as a deployed model hears them: the model learns the whole operating range, so
    # its confidence reflects what a configuration leaves of the word.
    for j in np.flatnonzero(rng.uniform(size=batch) < 0.5):
      config = {name: float(rng.choice(values)) for name, values in ladders.items()}
      clips[j] = sent_audio.send(clips[j], config)[0]
    return jnp.asarray(clips), jnp.asarray(words[pick])

  def loss_fn(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

  start = time.perf_counter()
  _fit(model, batches, loss_fn, steps=steps, learning_rate=3e-3, progress=progress,
       desc="training kws")
  predict = jax.jit(lambda x: jnp.argmax(model(x), -1))
  predicted = np.concatenate([predict(jnp.asarray(held_out[i:i + 128]))
                              for i in range(0, len(held_out), 128)])
  info = {"seed": seed, "steps": steps, "batch": batch, "words": list(speech.WORDS),
          "train_voices": list(speech.TRAIN_VOICES), "held_out_voices":
          list(speech.HELD_OUT_VOICES), "held_out_examples": len(held_out),
          "held_out_accuracy": float(np.mean(predicted == held_words)),
          "held_out_chance_accuracy": 1.0 / len(speech.WORDS),
          "train_seconds": round(time.perf_counter() - start, 1)}
  return model, info


def _rotate(points: np.ndarray, angle: float, flip: bool, extent: float) -> np.ndarray:
  """Rotates a tile's x, y about its centre (and mirrors x): the same ground, seen otherwise."""
  out = points.copy()
  xy = points[:, :2] - extent / 2
  c, s = np.cos(angle), np.sin(angle)
  xy = xy @ np.array([[c, -s], [s, c]])
  if flip:
    xy[:, 0] = -xy[:, 0]
  out[:, :2] = xy + extent / 2
  return out


def train_pointnet(seed: int = 0, *, steps: int = 800, batch: int = 8, progress: bool = True):
  """Trains the per-point ground classifier; returns `(model, info)` with held-out accuracy
  and mIoU (ground, not ground) on the held-out tiles."""
  from oneadapt_jax import lidar

  train_tiles, held_out = lidar.split()
  rng = np.random.default_rng(seed)
  model = models.PointNet(train_tiles[0].cloud.points.shape[-1], 2, extent=lidar.TILE,
                          rngs=nnx.Rngs(seed))

  def batches(i):
    pick = rng.choice(len(train_tiles), batch, replace=False)
    points = np.stack([_rotate(np.asarray(train_tiles[j].cloud.points), rng.uniform(0, 2 * np.pi),
                               bool(rng.integers(2)), lidar.TILE) for j in pick])
    mask = np.stack([train_tiles[j].cloud.mask for j in pick])
    # Half the tiles come thinned to a density of 0.2..1, as a sender that drops points would
    # deliver them; the loss counts the points delivered.
    density = np.where(rng.uniform(size=(batch, 1)) < 0.5, rng.uniform(0.2, 1.0, (batch, 1)), 1.0)
    mask = mask * (rng.uniform(size=mask.shape) < density)
    labels = np.stack([train_tiles[j].labels for j in pick])
    return jnp.asarray(points), jnp.asarray(mask), jnp.asarray(labels)

  def loss_fn(model, points, mask, labels):
    logits = model(knobs.PointCloud(points, mask))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(losses * mask) / jnp.sum(mask)

  start = time.perf_counter()
  _fit(model, batches, loss_fn, steps=steps, learning_rate=5e-3, progress=progress,
       desc="training pointnet")
  predict = jax.jit(lambda cloud: jnp.argmax(model(cloud), -1))
  correct = total = ground = 0
  intersection, union = np.zeros(2), np.zeros(2)
  for tile in held_out:
    real = tile.cloud.mask > 0
    predicted = np.asarray(predict(knobs.PointCloud(*map(jnp.asarray, tile.cloud))))[real]
    truth = tile.labels[real]
    correct += int(np.sum(predicted == truth))
    ground += int(np.sum(truth == 1))
    total += int(real.sum())
    for k in (0, 1):
      intersection[k] += np.sum((predicted == k) & (truth == k))
      union[k] += np.sum((predicted == k) | (truth == k))
  info = {"seed": seed, "steps": steps, "batch": batch, "classes": ["not ground", "ground"],
          "train_tiles": len(train_tiles), "held_out_tiles": len(held_out),
          "held_out_points": total, "held_out_accuracy": correct / total,
          "held_out_majority_accuracy": 1.0 - ground / total,
          "held_out_miou": float(np.mean(intersection / union)),
          "train_seconds": round(time.perf_counter() - start, 1)}
  return model, info


def train_depthseg(seed: int = 0, *, steps: int = 600, batch: int = 16, frames: int = 1200,
                   progress: bool = True):
  """Trains the depth ground segmenter; returns `(model, info)` with the held-out pixel
  accuracy and mIoU (ground, not ground) on the stream's frames east of the split line."""
  from oneadapt_jax import depth, metrics
  from oneadapt_jax.workloads import depth as sent_depth

  rng = np.random.default_rng(seed)
  poses = depth.training_poses(rng, frames)
  depths, classes = depth.render_flight(poses)
  images = depths[..., None].astype(np.float32) / 65535
  ladders = sent_depth.knob_chain().values
  model = models.DepthSeg(rngs=nnx.Rngs(seed))

  def batches(i):
    pick = rng.choice(len(images), batch, replace=False)
    x = images[pick].copy()
    # Half the frames come through the real sender at a random configuration (one frame: the
    # frame rate does not apply), as the server receives them.
    for j in np.flatnonzero(rng.uniform(size=batch) < 0.5):
      config = {name: float(rng.choice(values)) for name, values in ladders.items()}
      config["frame_rate"] = depth.FPS
      x[j] = depth.send(x[j:j + 1], config).frames[0]
    flip = rng.uniform(size=batch) < 0.5  # mirror images: the same scenes, seen otherwise
    x[flip] = x[flip, :, ::-1]
    y = classes[pick].copy()
    y[flip] = y[flip, :, ::-1]
    return jnp.asarray(x), jnp.asarray(y.astype(np.int32))

  def loss_fn(model, x, y):
    valid = (y != depth.NO_RETURN).astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(model(x), jnp.where(valid > 0, y, 0))
    return jnp.sum(losses * valid) / jnp.maximum(jnp.sum(valid), 1.0)

  start = time.perf_counter()
  _fit(model, batches, loss_fn, steps=steps, learning_rate=3e-3, progress=progress,
       desc="training depthseg")
  held_depth, held_classes = depth.stream()
  east = depth.held_out(depth.stream_poses())
  predict = jax.jit(lambda x: jnp.argmax(model(x), -1))
  predicted = np.asarray(predict(jnp.asarray(held_depth[east, ..., None] / 65535, jnp.float32)))
  truth = held_classes[east]
  valid = truth != depth.NO_RETURN
  info = {"seed": seed, "steps": steps, "batch": batch, "training_frames": frames,
          "classes": ["not ground", "ground"], "held_out_frames": int(east.sum()),
          "held_out_pixels": int(valid.sum()),
          "held_out_accuracy": float(np.mean(predicted[valid] == truth[valid])),
          "held_out_majority_accuracy": float(max(np.mean(truth[valid] == 1),
                                                  np.mean(truth[valid] == 0))),
          "held_out_miou": metrics.miou(predicted[valid], truth[valid], 2),
          "train_seconds": round(time.perf_counter() - start, 1)}
  return model, info


def train_asr(seed: int = 0, *, steps: int = 1200, batch: int = 32, sentences_count: int = 2000,
              held_out_count: int = 240, progress: bool = True):
  """Trains the CTC speech recogniser; returns `(model, info)` with the held-out word error rate
  (as `held_out_accuracy = 1 - WER`) on sentences in the held-out voices."""
  from oneadapt_jax import metrics, sentences, speech
  from oneadapt_jax.workloads import speech as sent_speech

  audio, words = sentences.utterances(speech.TRAIN_VOICES, sentences_count, seed=seed,
                                      progress=progress)
  held_audio, held_words = sentences.utterances(speech.HELD_OUT_VOICES, held_out_count,
                                                seed=seed + 500, progress=progress)
  rng = np.random.default_rng(seed)
  held_out = speech.noisy(held_audio, rng.uniform(0, 30, len(held_audio)), rng)
  longest = max(len(w) for w in words)
  labels = np.zeros((len(words), longest), np.int32)
  for i, w in enumerate(words):
    labels[i, :len(w)] = sentences.tokens(w)
  label_paddings = (labels == 0).astype(np.float32)
  # A pool through the real sender (Opus at a random bitrate, chunks dropped by a random
  # threshold), made once: coding every batch would cost more than the training. The model
  # learns the codec's whole operating range, so its confidence reflects what a setting leaves.
  ladders = sent_speech.knob_chain().values
  pool = rng.choice(len(audio), len(audio) // 4, replace=False)
  pooled = speech.noisy(audio[pool], rng.uniform(-5, 40, len(pool)), rng)
  pooled = np.stack([sent_speech.send(clip, {name: float(rng.choice(values))
                                             for name, values in ladders.items()})[0]
                     for clip in (tqdm(pooled, desc="opus pool") if progress else pooled)])
  model = models.SpeechRecognizer(len(sentences.VOCABULARY), rngs=nnx.Rngs(seed))

  def batches(i):
    fresh = rng.choice(len(audio), batch * 3 // 4, replace=False)
    coded = rng.choice(len(pool), batch - len(fresh), replace=False)
    clips = audio[fresh] * rng.uniform(0.3, 1.8, (len(fresh), 1))
    clips = speech.noisy(np.clip(clips, -1, 1), rng.uniform(-5, 40, len(fresh)), rng)
    pick = np.concatenate([fresh, pool[coded]])
    return (jnp.asarray(np.concatenate([clips, pooled[coded]])), jnp.asarray(labels[pick]),
            jnp.asarray(label_paddings[pick]))

  def loss_fn(model, x, y, y_paddings):
    logits = model(x)
    paddings = jnp.zeros(logits.shape[:2], logits.dtype)
    return jnp.mean(optax.ctc_loss(logits, paddings, y, y_paddings) /
                    jnp.maximum(jnp.sum(1 - y_paddings, axis=-1), 1.0))

  start = time.perf_counter()
  _fit(model, batches, loss_fn, steps=steps, learning_rate=3e-3, progress=progress,
       desc="training asr")
  predict = jax.jit(model)
  logits = np.concatenate([predict(jnp.asarray(held_out[i:i + 60]))
                           for i in range(0, len(held_out), 60)])
  wer = [metrics.word_error_rate(sent_speech.transcript(l), w) for l, w in zip(logits, held_words)]
  info = {"seed": seed, "steps": steps, "batch": batch, "training_sentences": len(audio),
          "vocabulary": list(sentences.VOCABULARY), "train_voices": list(speech.TRAIN_VOICES),
          "held_out_voices": list(speech.HELD_OUT_VOICES), "held_out_examples": len(held_out),
          "held_out_wer": float(np.mean(wer)), "held_out_accuracy": 1.0 - float(np.mean(wer)),
          "held_out_sentence_accuracy": float(np.mean(np.asarray(wer) == 0)),
          "train_seconds": round(time.perf_counter() - start, 1)}
  return model, info


TRAINERS = {"kws": train_kws, "pointnet": train_pointnet, "depthseg": train_depthseg,
            "asr": train_asr}


def train(name: str, seed: int = 0, *, progress: bool = True) -> dict:
  """Trains `name`, saves it into the cache and returns its manifest."""
  if name not in TRAINERS:
    raise ValueError(f"no trainer for {name!r}; available: {sorted(TRAINERS)}")
  model, info = TRAINERS[name](seed, progress=progress)
  trained.save(name, model, info)
  return trained.manifest(name)


def ensure(progress: bool = True) -> dict:
  """Trains whichever trained model is missing (neither in the cache nor shipped: `models.trained`)
  or whose weights no longer match their manifest's sha256; returns every manifest."""
  out = {}
  for name in TRAINERS:
    try:
      trained.verified_path(name)
      out[name] = trained.manifest(name)
    except (models.AssetMissingError, models.AssetIntegrityError):
      out[name] = train(name, progress=progress)
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m oneadapt_jax.train", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("name", choices=sorted(TRAINERS))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  info = train(args.name, args.seed, progress=not args.no_progress)
  print(f"{args.name}: held-out accuracy {info['held_out_accuracy']:.3f} "
        f"({info['train_seconds']} s of training, seed {info['seed']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
