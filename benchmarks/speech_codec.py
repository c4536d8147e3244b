"""How well `knobs.audio_bitrate` stands in for Opus: the surrogate's fidelity on the speech stream.

Over segments of the speech stream (`oneadapt_jax.sentences.stream`: espeak-ng sentences in
held-out voices, SNR drifting 30 -> 0 -> 30 dB), at each rung of the bitrate ladder:
- Opus's bytes a segment (libopus VBR through PyAV) against the surrogate's estimate;
- the SNR (dB) of Opus's decoded audio and of the surrogate's output, against the segment;
- the share of the energy above 4.5 kHz each keeps (the band edge: narrowband under 10 kb/s);
- the recogniser's word accuracy (1 - WER against its transcript of the raw segment) and the
  proxy, through Opus and through the surrogate.
Then, as the video fidelity check does, the share of rung-to-rung steps where the sign of the
surrogate's gradient agrees with the real codec's finite difference: of the bytes (the chain's
cost against the real sender's bytes, both knobs) and of the proxy (d proxy / d bitrate setting
against the proxy's change through Opus; steps where the proxy moves by under 0.01 left out).

    python benchmarks/speech_codec.py [--segments 10]

Prints the table with the machine and writes `speech_codec.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from _common import machine  # benchmarks/ runs as a script folder
from scipy.stats import spearmanr

import knobs
from oneadapt_jax import opus, sentences
from oneadapt_jax.core import setting_of
from oneadapt_jax.workloads import speech as speech_kind


def _snr(clean, coded):
  return float(10 * np.log10(np.sum(clean**2) / max(np.sum((clean - coded) ** 2), 1e-12)))


def _high(x, freqs):
  power = np.abs(np.fft.rfft(x)) ** 2
  return float(power[freqs > 4500].sum() / power.sum())


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--segments", type=int, default=10,
                      help="the first N segments of the 30-segment stream")
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/benchmarks"))
  args = parser.parse_args(argv)
  waves, _ = sentences.stream(speech_kind.SEGMENTS)
  waves = waves[:args.segments]
  model = speech_kind.load_model()
  knob = knobs.audio_bitrate()
  bitrates = [float(b) for b in knob.values]
  rungs = len(bitrates) - 1
  infer = jax.jit(model)
  proxy_grad = jax.jit(jax.grad(lambda s, x: speech_kind.proxy(model(knob.apply(s, x)))))
  freqs = np.fft.rfftfreq(waves.shape[-1], 1 / opus.RATE)
  rows = {b: [] for b in bitrates}
  proxy_agree = proxy_steps = 0
  for wave in waves:
    x = jnp.asarray(wave)
    reference = np.asarray(infer(x))
    real_proxy = []
    for i, b in enumerate(bitrates):
      coded = opus.encode(wave, b)
      ours = np.asarray(knob.apply(jnp.float32(i / rungs), x))
      logits = {"opus": np.asarray(infer(jnp.asarray(coded.audio))),
                "surrogate": np.asarray(infer(jnp.asarray(ours)))}
      real_proxy.append(float(speech_kind.proxy(logits["opus"])))
      rows[b].append([coded.packet_bytes.sum(), float(knob.cost(jnp.float32(i / rungs), x)),
                      _snr(wave, coded.audio), _snr(wave, ours), _high(wave, freqs),
                      _high(coded.audio, freqs), _high(ours, freqs),
                      *(speech_kind.metric(logits[k], reference) for k in logits),
                      *(float(speech_kind.proxy(logits[k])) for k in logits)])
    for i in range(rungs):
      change = real_proxy[i + 1] - real_proxy[i]
      if abs(change) >= 0.01:
        proxy_steps += 1
        proxy_agree += np.sign(float(proxy_grad(jnp.float32(i / rungs), x))) == np.sign(change)
  # the chain's bytes over the whole grid against the real sender's, and their gradients' signs
  chain = speech_kind.knob_chain()
  ladders = chain.values
  grid = [dict(zip(ladders, map(float, c))) for c in itertools.product(*ladders.values())]
  byte_grad = jax.jit(jax.grad(chain.cost))
  rank, byte_agree, byte_steps = [], 0, 0
  for wave in waves[:3]:
    x = jnp.asarray(wave)
    real = {tuple(c.values()): speech_kind.send(wave, c)[1] for c in grid}
    setting = {tuple(c.values()): setting_of(chain, c) for c in grid}
    rank.append(spearmanr(list(real.values()),
                          [float(chain.cost(setting[k], x)) for k in real]).statistic)
    for c in grid:
      for name, values in ladders.items():
        i = list(values).index(c[name])
        if i + 1 == len(values):
          continue
        up = {**c, name: float(values[i + 1])}
        change = real[tuple(up.values())] - real[tuple(c.values())]
        if change:
          byte_steps += 1
          byte_agree += np.sign(float(byte_grad(setting[tuple(c.values())], x)[name])) == \
              np.sign(change)
  print(f"# Opus against knobs.audio_bitrate, the first {len(waves)} segments of the speech "
        f"stream; {machine()}")
  print(f"{'kb/s':>5} {'Opus B':>7} {'est. B':>7} {'SNR Opus':>8} {'SNR ours':>8} "
        f"{'>4.5k raw':>9} {'Opus':>6} {'ours':>6} {'acc Opus':>8} {'acc ours':>8} "
        f"{'proxy Opus':>10} {'proxy ours':>10}")
  table = []
  for b, values in rows.items():
    m = np.mean(values, axis=0)
    table.append(dict(zip(("bitrate", "opus_bytes", "estimated_bytes", "snr_opus", "snr_ours",
                           "high_raw", "high_opus", "high_ours", "accuracy_opus",
                           "accuracy_ours", "proxy_opus", "proxy_ours"), [b, *map(float, m)])))
    print(f"{b / 1000:>5.0f} {m[0]:>7.0f} {m[1]:>7.0f} {m[2]:>8.1f} {m[3]:>8.1f} {m[4]:>9.3f} "
          f"{m[5]:>6.3f} {m[6]:>6.3f} {m[7]:>8.3f} {m[8]:>8.3f} {m[9]:>10.3f} {m[10]:>10.3f}")
  summary = {"bytes_spearman_over_grid": float(np.mean(rank)),
             "byte_gradient_sign_agreement": byte_agree / max(byte_steps, 1),
             "byte_steps": byte_steps,
             "proxy_gradient_sign_agreement": proxy_agree / max(proxy_steps, 1),
             "proxy_steps": proxy_steps}
  print(f"chain bytes against the sender's over the {len(grid)}-configuration grid: Spearman "
        f"{summary['bytes_spearman_over_grid']:.3f} (first {len(rank)} segments); byte gradient "
        f"sign agrees in {byte_agree}/{byte_steps} steps; proxy gradient sign agrees with Opus's "
        f"in {proxy_agree}/{proxy_steps} steps")
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "speech_codec.json").write_text(json.dumps(
      {"machine": machine(), "segments": len(waves), "rows": table, **summary}, indent=1))
  return {"rows": table, **summary}


if __name__ == "__main__":
  main()
