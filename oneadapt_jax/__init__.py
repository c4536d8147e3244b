"""OneAdapt in JAX: accuracy gradients for configuration knobs, the controller, baselines, codec.

The knob library lives in the separate, light package `knobs`; pretrained networks in `models`.
This package holds what ties them together. So far: the knob gallery (`oneadapt gallery`).
"""

__version__ = "0.1.0"

__all__ = ("__version__",)
