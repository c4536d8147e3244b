"""The core of oneadapt-jax: the `Workload` protocol, records, the controller and its loop.

Everything here works on any kind of stream through the `Workload` protocol; the kinds live in
`oneadapt_jax.workloads`, the baselines in `oneadapt_jax.baselines`.
"""

from oneadapt_jax.core._controller import ESTIMATORS as ESTIMATORS
from oneadapt_jax.core._controller import Bound as Bound
from oneadapt_jax.core._controller import Controller as Controller
from oneadapt_jax.core._controller import config_of as config_of
from oneadapt_jax.core._controller import setting_of as setting_of
from oneadapt_jax.core._cost import CostModel as CostModel
from oneadapt_jax.core._loop import PRESETS as PRESETS
from oneadapt_jax.core._loop import REVISION as ONEADAPT_REVISION
from oneadapt_jax.core._loop import LoopState as LoopState
from oneadapt_jax.core._loop import calibration_scale as calibration_scale
from oneadapt_jax.core._loop import mesh as mesh
from oneadapt_jax.core._loop import oneadapt as oneadapt
from oneadapt_jax.core._loop import run_oneadapt as run_oneadapt
from oneadapt_jax.core._loop import scale_of_terms as scale_of_terms
from oneadapt_jax.core._method import Method as Method
from oneadapt_jax.core._types import SCHEMA_VERSION as SCHEMA_VERSION
from oneadapt_jax.core._types import Config as Config
from oneadapt_jax.core._types import Outcome as Outcome
from oneadapt_jax.core._types import Record as Record
from oneadapt_jax.core._types import SchemaError as SchemaError
from oneadapt_jax.core._types import Tradeoff as Tradeoff
from oneadapt_jax.core._types import check_schema as check_schema
from oneadapt_jax.core._types import config_key as config_key
from oneadapt_jax.core._types import utility as utility
from oneadapt_jax.core._workload import SentWorkload as SentWorkload
from oneadapt_jax.core._workload import ServerVjp as ServerVjp
from oneadapt_jax.core._workload import Workload as Workload
from oneadapt_jax.core._workload import WorkloadBase as WorkloadBase

__all__ = (
    "ESTIMATORS",
    "ONEADAPT_REVISION",
    "PRESETS",
    "SCHEMA_VERSION",
    "Bound",
    "Config",
    "Controller",
    "CostModel",
    "LoopState",
    "Method",
    "Outcome",
    "Record",
    "SchemaError",
    "SentWorkload",
    "ServerVjp",
    "Tradeoff",
    "Workload",
    "WorkloadBase",
    "calibration_scale",
    "check_schema",
    "config_key",
    "config_of",
    "mesh",
    "oneadapt",
    "run_oneadapt",
    "scale_of_terms",
    "setting_of",
    "utility",
)
