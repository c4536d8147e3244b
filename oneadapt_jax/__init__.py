"""OneAdapt in JAX: accuracy gradients for configuration knobs, the controller, baselines, codec.

The knob library lives in the separate, light package `knobs`; pretrained networks in `models`.
This package ties them together:

- `core`: the `Workload` protocol, `Record`, the controller and its one segment loop;
- `workloads`: one folder per kind of stream (video, audio, LiDAR), registered by name;
- `baselines`: one module per method, and `METHODS`, the registry of every method;
- `configs`: experiments as `get_config()` files; `experiment`: the resumable driver;
- `accgrad` (`acc_grad`), `proxies`, `metrics`, the data and senders (`data`, `codec`, `speech`,
  `lidar`), and the tools: `cli`, `batch`, `proxy_check`, `fidelity`, `gallery`, `report`, `plots`.
"""

__version__ = "0.1.0"

__all__ = ("__version__", "acc_grad")


def __getattr__(name):
  # `acc_grad` pulls in flax and the models; the CLI's other commands need not pay for it.
  if name == "acc_grad":
    from oneadapt_jax.accgrad import acc_grad

    return acc_grad
  raise AttributeError(f"module 'oneadapt_jax' has no attribute {name!r}")
