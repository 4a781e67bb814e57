"""Loading: checkpoints (formats, safe loading), model specs, data specs, the built-in zoo."""

from landscape.loading.checkpoints import Checkpoint, file_sha256, load_checkpoint
from landscape.loading.data import BUILTIN as BUILTIN_DATA
from landscape.loading.data import DataSet, load_data
from landscape.loading.imports import import_object
from landscape.loading.models import build_model
from landscape.loading.optimizer import (
    AdamState,
    OptimizerState,
    describe_optimizer,
    read_optimizer,
)
from landscape.loading.state_dicts import load_into, match_keys
from landscape.loading.zoo import ZOO

__all__ = [
    "BUILTIN_DATA",
    "ZOO",
    "AdamState",
    "OptimizerState",
    "Checkpoint",
    "DataSet",
    "build_model",
    "describe_optimizer",
    "file_sha256",
    "import_object",
    "load_checkpoint",
    "load_data",
    "load_into",
    "match_keys",
    "read_optimizer",
]
