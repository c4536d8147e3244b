"""OneAdapt in JAX: accuracy gradients for configuration knobs, the controller, baselines, codec.

The knob library lives in the separate, light package `knobs`; pretrained networks in `models`.
This package ties them together: real clips (`data`, `tfds_video`), the x264 encoder (`codec`),
surrogate fidelity (`fidelity`), proxies and metrics, AccGrad (`acc_grad`, `accgrad`), the
controller and baselines (`adapt`), and the `oneadapt` CLI.
"""

__version__ = "0.1.0"

__all__ = ("__version__", "acc_grad")


def __getattr__(name):
  # `acc_grad` pulls in flax and the models; the CLI's other commands need not pay for it.
  if name == "acc_grad":
    from oneadapt_jax.accgrad import acc_grad

    return acc_grad
  raise AttributeError(f"module 'oneadapt_jax' has no attribute {name!r}")
