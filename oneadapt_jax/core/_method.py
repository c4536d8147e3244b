"""A method: the controller or a baseline, as the experiment driver runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from oneadapt_jax.core._types import Record
from oneadapt_jax.core._workload import Workload


class Method(NamedTuple):
  """A registered way of choosing configurations.

  Attributes:
    run: `(workload, tradeoff, *, cost) -> records`, one `Record` per segment (`cost`: the
      `CostModel` whose profiling delays it obeys).
    requires: knobs the workload's real sender must have beyond its chain
      (`Workload.extra_knobs`), e.g. Reducto's `"frame_filter"`.
    summary: one line for listings and error messages.
  """

  run: Callable[..., list[Record]]
  requires: tuple[str, ...] = ()
  summary: str = ""

  def why_not(self, workload: Workload) -> str | None:
    """Why the method does not apply to `workload`, or `None` when it does."""
    missing = [k for k in self.requires
               if k not in workload.extra_knobs and k not in workload.knob.values]
    if not missing:
      return None
    return (f"needs the knob{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which the "
            f"{workload.kind} workload's sender does not have (it has "
            f"{', '.join([*workload.knob.values, *workload.extra_knobs]) or 'none'})")
