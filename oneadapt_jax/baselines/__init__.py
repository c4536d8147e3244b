"""The methods OneAdapt is measured against, one module each, and the registry of every method.

Every method takes a `Workload`, a `Tradeoff` and a `CostModel` (whose profiling delays it
obeys) and returns one `Record` per segment: the
configuration sent, its real accuracy and bytes, the forward passes it ran, and the inference it
spent profiling configurations it did not send (`profiling_frames`). Profiling reuses the
workload's memoised evaluations, so a sweep is computed once however many methods ask.

- `static`: one configuration held throughout.
- `awstream` (Zhang et al., SIGCOMM'18), `chameleon` (Jiang et al., SIGCOMM'18), `reducto`
  (Li et al., SIGCOMM'20; needs a frame filter), `oracle` (an upper bound): see their modules.

`METHODS` registers these and the controller (`oneadapt`) by name; a `Method` declares what it
needs of a workload, and `Method.why_not` says why it does not apply.
"""

from oneadapt_jax.baselines._common import choose as choose
from oneadapt_jax.baselines._common import pareto as pareto
from oneadapt_jax.baselines.awstream import awstream as awstream
from oneadapt_jax.baselines.chameleon import chameleon as chameleon
from oneadapt_jax.baselines.chameleon import one_knob_at_a_time as one_knob_at_a_time
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
    "oracle": Method(oracle, summary="the per-segment best grid configuration (upper bound)"),
}
#: The methods `compare` reads OneAdapt against (the oracle is a bound, not a competitor).
BASELINES = ("awstream", "chameleon", "reducto")

__all__ = ("BASELINES", "METHODS", "awstream", "chameleon", "choose", "one_knob_at_a_time",
           "oracle", "pareto", "reducto", "static")
