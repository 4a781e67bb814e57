"""A ``torch.distributed.checkpoint`` folder (``dcp.save``: FSDP2, torchtitan) as a checkpoint.

The folder holds ``.metadata`` (a pickle of the layout) and ``*.distcp`` shards. torch reads the
metadata with plain ``pickle.load``, which would run whatever the file names, so it is read here
by an unpickler that imports only the layout's own classes (``_SafeMetadata``), and refuses
anything else unless ``trust``; the shards hold raw tensor bytes and objects that torch reads
with ``weights_only=True``. The whole state is gathered on the CPU in one process (no process
group), as ``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` does, and then read
as a ``torch.save`` dict is: weights under ``model`` (or the top-level tensors, torchtitan's
layout), the optimizer under ``optimizer`` (keyed by parameter name), plain values as metadata.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from typing import Any

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.loading.imports import one_line

METADATA = ".metadata"
FORMAT = "dcp"
_LAYOUT_MODULES = ("torch.distributed.checkpoint.metadata",)
_ALLOWED = {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
            ("torch.serialization", "_get_layout"), ("collections", "OrderedDict"),
            ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
            ("pathlib", "PureWindowsPath")}


def is_folder(path: str) -> bool:
    """Whether ``path`` is a folder written by ``torch.distributed.checkpoint.save``."""
    return os.path.isfile(os.path.join(path, METADATA)) and any(
        name.endswith(".distcp") for name in os.listdir(path))


class _Refused(pickle.UnpicklingError):
    """A global the layout does not need (its ``module.name`` is the message)."""


class _SafeMetadata(pickle.Unpickler):
    """Imports the checkpoint layout's classes, torch dtypes and paths; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = module in _LAYOUT_MODULES or (module, name) in _ALLOWED or (
            module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
        if not allowed:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def _metadata(path: str, trust: bool) -> Any:
    """The folder's layout, unpickled by ``_SafeMetadata`` (by plain pickle only with ``trust``)."""
    try:
        with open(os.path.join(path, METADATA), "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise InputError(f"{path}/{METADATA} is not readable ({one_line(exc)})") from exc
    try:
        return _SafeMetadata(io.BytesIO(raw)).load()
    except _Refused as exc:
        if not trust:
            raise InputError(f"{path}/{METADATA} would import {exc} to be read: pass `trust` if "
                             "you trust it") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes fail the unpickler in many ways
        raise InputError(f"{path}/{METADATA} is not a checkpoint layout ({one_line(exc)})"
                         ) from None
    try:
        return pickle.loads(raw)  # noqa: S301 - the user trusts this checkpoint
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}/{METADATA}: cannot unpickle ({one_line(exc)})") from exc


def read_state(path: str, trust: bool = False) -> dict[str, Any]:
    """The folder's whole state dict, nested as it was saved, every tensor on the CPU."""
    try:
        from torch.distributed.checkpoint import FileSystemReader
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
        from torch.distributed.checkpoint.metadata import StorageMeta
        from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    except ImportError as exc:
        raise InputError(f"{path}: reading a torch.distributed.checkpoint folder needs a newer "
                         f"torch ({one_line(exc)})") from exc
    metadata = _metadata(path, trust)  # checked before torch reads anything

    class Reader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    state: dict[str, Any] = {}
    try:
        _load_state_dict(state, storage_reader=Reader(path),
                         planner=_EmptyStateDictLoadPlanner(), no_dist=True)
    except (Exception, CheckpointException) as exc:  # noqa: BLE001 - a BaseException in torch
        raise InputError(f"{path}: cannot read the distributed checkpoint "
                         f"({one_line(exc)[:200]})") from None
    return state


def digest(path: str) -> str:
    """SHA-256 over the lines ``"<file> <sha256 of file>"`` of the folder's files, sorted."""
    from landscape.loading.checkpoints import file_sha256

    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        if name == METADATA or name.endswith(".distcp"):
            h.update(f"{name} {file_sha256(os.path.join(path, name))}\n".encode())
    return h.hexdigest()


def as_saved_dict(state: dict[str, Any]) -> dict[str, Any]:
    """torchtitan keeps the model's tensors at the top level beside ``optimizer`` and the rest:
    gather them under ``model`` so the dict reads as a ``torch.save`` checkpoint does."""
    if any(k in state for k in ("model", "state_dict", "model_state_dict")):
        return state
    weights = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not weights:
        return state
    return {**{k: v for k, v in state.items() if k not in weights}, "model": weights}
