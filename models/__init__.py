"""Pretrained networks as Flax NNX modules, loaded offline from checksum-verified assets.

Nothing is here yet: the ported MediaPipe models arrive with issue 4. The package exists so the
distribution's three import packages (`knobs`, `models`, `oneadapt_jax`) are in place.
"""

__all__ = ()
