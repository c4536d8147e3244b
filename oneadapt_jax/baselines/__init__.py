"""The methods OneAdapt is measured against, one module each, and the registry of every method.

Every method takes a `Workload`, a `Tradeoff` and a `CostModel` (whose profiling delays it
obeys) and returns one `Record` per segment: the
configuration sent, its real accuracy and bytes, the forward passes it ran, and the inference it
spent profiling configurations it did not send (`profiling_frames`). Profiling reuses the
workload's memoised evaluations, so a sweep is computed once however many methods ask.

- `static`: one configuration held throughout.
- `awstream` (Zhang et al., SIGCOMM'18), `chameleon` (Jiang et al., SIGCOMM'18), `reducto`
  (Li et al., SIGCOMM'20; needs a frame filter), `dds` (Du et al., SIGCOMM'20; needs a
  per-macroblock quality and a two-pass sender), `oracle` (an upper bound): see their modules.

`METHODS` registers these and the controller (`oneadapt`) by name; a `Method` declares what it
needs of a workload, and `Method.why_not` says why it does not apply. `method_of` also knows
OneAdapt's variants by name, `oneadapt[OPTION=VALUE,...]` (a preset, an estimator, a start, ...:
the options of `oneadapt_jax.core.oneadapt`), which the bench's ablations run.
"""

import functools

from oneadapt_jax.baselines._common import choose as choose
from oneadapt_jax.baselines._common import pareto as pareto
from oneadapt_jax.baselines.awstream import awstream as awstream
from oneadapt_jax.baselines.chameleon import chameleon as chameleon
from oneadapt_jax.baselines.chameleon import one_knob_at_a_time as one_knob_at_a_time
from oneadapt_jax.baselines.dds import dds as dds
from oneadapt_jax.baselines.oracle import oracle as oracle
from oneadapt_jax.baselines.reducto import reducto as reducto
from oneadapt_jax.baselines.static import static as static
from oneadapt_jax.core import Method, oneadapt

METHODS: dict[str, Method] = {
    "oneadapt": Method(oneadapt, summary="OneAdapt: gradient ascent with AccGrad"),
    "awstream": Method(awstream, summary="AWStream: offline profile, Pareto frontier, online "
                       "re-profiling"),
    "chameleon": Method(chameleon, summary="Chameleon: back-to-back knob-at-a-time profiling "
                        "with top-k followers"),
    "reducto": Method(reducto, requires=("frame_filter",),
                      summary="Reducto: camera-side frame filtering to an accuracy target"),
    "dds": Method(dds, requires=("roi_quality", "requery_qp"),
                  summary="DDS: low quality first, uncertain regions re-sent at high quality"),
    "oracle": Method(oracle, summary="the per-segment best grid configuration (upper bound)"),
}


def method_of(name: str) -> Method:
  """The registered method `name`, or a variant of OneAdapt, `oneadapt[OPTION=VALUE,...]`."""
  if name in METHODS:
    return METHODS[name]
  base, _, rest = name.partition("[")
  if base != "oneadapt" or not rest.endswith("]"):
    raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}, or a variant "
                     "oneadapt[OPTION=VALUE,...]")
  options = {}
  for item in filter(None, rest[:-1].split(",")):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"{name!r}: a variant's options are OPTION=VALUE, got {item!r}")
    options[key.strip()] = _value(value.strip())
  run = functools.partial(oneadapt, method=name, **options)
  return Method(run, summary=f"OneAdapt with {rest[:-1]}")


def _value(text: str):
  for parse in (int, float):
    try:
      return parse(text)
    except ValueError:
      pass
  return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def base_name(name: str) -> str:
  """A method's registered name (a OneAdapt variant's is `oneadapt`)."""
  return name.partition("[")[0]


#: The methods `compare` reads OneAdapt against (the oracle is a bound, not a competitor).
BASELINES = ("awstream", "chameleon", "reducto", "dds")

__all__ = ("BASELINES", "METHODS", "awstream", "base_name", "chameleon", "choose", "dds",
           "method_of", "one_knob_at_a_time", "oracle", "pareto", "reducto", "static")
