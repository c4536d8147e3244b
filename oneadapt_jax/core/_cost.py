"""The one cost model every method is charged by.

GPU work is counted in forward-equivalents: one per frame the server's model actually ran on
(what was sent, and what a baseline profiled), plus each AccGrad frame at what its backward pass
costs relative to a forward pass of the same model (measured on the model: `oneadapt bench`
times it before it runs anything). Profiling is not free in time either: a profile of `F` frames
runs on the server's spare GPU, `spare_gpu_fps` frames per second (5 in OneAdapt's own
re-implementations of AWStream and Chameleon), so its result applies `delay(F)` segments after
the segment it started on. Camera-side encodes are counted in every `Record`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from oneadapt_jax.core._types import Record


@dataclasses.dataclass(frozen=True)
class CostModel:
  """How GPU work and profiling delays are counted, the same for every method.

  Attributes:
    backward_cost: forward-equivalents one AccGrad frame costs as the controller runs it (its
      forward pass through the chain and the model, and the backward pass), measured on the
      model at the workload's frame size.
    spare_gpu_fps: frames per second of server GPU left over for profiling.
  """

  backward_cost: float = 3.0
  spare_gpu_fps: float = 5.0

  def __post_init__(self):
    if not (math.isfinite(self.backward_cost) and self.backward_cost >= 0):
      raise ValueError(f"backward_cost must be a finite number >= 0, got {self.backward_cost}")
    if not (math.isfinite(self.spare_gpu_fps) and self.spare_gpu_fps > 0):
      raise ValueError(f"spare_gpu_fps must be > 0 frames per second, got {self.spare_gpu_fps}")

  def delay(self, profiled_frames: int, seconds_per_segment: float) -> int:
    """Segments after its start before a profile of `profiled_frames` frames lands (at least
    one: a profile needs the segment it profiles to have arrived)."""
    seconds = profiled_frames / self.spare_gpu_fps
    return max(1, math.ceil(seconds / seconds_per_segment - 1e-9))

  def gpu(self, record: Record) -> float:
    """A record's GPU work in forward-equivalents: inference, profiling and AccGrad."""
    return record.dnn_frames + record.profiling_frames + record.backward_passes * self.backward_cost

  def total_gpu(self, records: Iterable[Record]) -> float:
    return sum(self.gpu(r) for r in records)
