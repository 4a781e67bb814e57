"""Any Result <-> one self-describing HDF5 file, and the nested JSON summary.

A Result is plain data. Its ``tree()`` is a nested dict: a dict is an HDF5 group, a string is an
attribute of its group, the key ``attrs`` holds further group attributes, and everything else
(numbers, lists, numpy arrays) is a dataset. ``DESCRIPTIONS`` maps "group/name" to the
``description`` attribute of a dataset. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h5py
import numpy as np

from . import __version__, distributed
from .errors import InputError

JSON_ARRAY_LIMIT = 256  # longer arrays (density grids, per-sample values) stay in the file only


class Result:
    """Base of every analysis Result dataclass."""

    command: ClassVar[str] = ""
    descriptions: ClassVar[dict[str, str]] = {}

    def tree(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


@dataclass
class RunInfo:
    """Provenance written as root attributes of every result file."""

    command: str
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    curvature: str = ""
    loss: str = ""
    model: str = ""
    data: str = ""
    n_samples: int = 0
    n_params: int = 0
    wall_seconds: float = 0.0
    matvecs: int = 0
    checkpoints: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def attrs(self) -> dict[str, Any]:
        import torch

        out = {
            "landscape_version": __version__,
            "command": self.command,
            "argv": json.dumps(self.argv),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "torch_version": str(torch.__version__),
            "curvature": self.curvature,
            "loss": self.loss,
            "model": self.model,
            "data": self.data,
            "n_samples": self.n_samples,
            "n_params": self.n_params,
            "wall_seconds": self.wall_seconds,
            "matvecs": self.matvecs,
        }
        out.update(self.extra)
        return out


def _description(path: str, descriptions: dict[str, str]) -> str | None:
    """The description of ``path``; ``blocks/<name>/...`` falls back to the whole-model path."""
    if path in descriptions:
        return descriptions[path]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "blocks":
        return descriptions.get("/".join(parts[2:]))
    return None


def _write_tree(group: h5py.Group, tree: dict[str, Any], descriptions: dict[str, str]) -> None:
    for key, value in tree.items():
        if key == "attrs":
            for k, v in value.items():
                group.attrs[k] = v
        elif isinstance(value, dict):
            _write_tree(group.create_group(key), value, descriptions)
        elif isinstance(value, str):
            group.attrs[key] = value
        elif value is None:
            continue
        else:
            array = np.asarray(value)
            if array.dtype.kind == "U":
                array = array.astype(h5py.string_dtype())
            ds = group.create_dataset(key, data=array)
            text = _description(f"{group.name.strip('/')}/{key}".strip("/"), descriptions)
            if text:
                ds.attrs["description"] = text


SUFFIXES = (".h5", ".hdf5")


def check_result_path(path: str) -> None:
    """Refuse a result name that does not say HDF5 (``-o result.txt`` would hide what it is)."""
    if not str(path).lower().endswith(SUFFIXES):
        raise InputError(
            f"{path}: a result file is HDF5 and its name must end in .h5 or .hdf5"
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_result(path: str, result: Result, run: RunInfo) -> None:
    """Write ``result`` and ``run``'s provenance to ``path`` atomically (temp file, rename).

    The file gets the permissions ``open()`` would give it (0666 less the umask), not the
    temporary file's private 0600.
    """
    if not distributed.is_main():  # rank 0 alone writes
        return
    check_result_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for k, v in run.attrs().items():
                f.attrs[k] = v
            ck = f.create_group("checkpoints")
            for i, info in enumerate(run.checkpoints):
                g = ck.create_group(str(i))
                for k, v in info.items():
                    g.attrs[k] = v
            _write_tree(f, result.tree(), type(result).descriptions)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_group(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in group.attrs.items():
        out[k] = v.decode() if isinstance(v, bytes) else _plain(v)
    for k, v in group.items():
        out[k] = _read_group(v) if isinstance(v, h5py.Group) else _plain(v[()])
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.dtype.kind == "O":
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode()
    return v


def read_result(path: str) -> dict[str, Any]:
    """Everything in a result file as a nested dict (root attributes at the top level).

    Raises InputError for a missing or unreadable file, and for an HDF5 file that landscape
    did not write (no ``landscape_version`` and ``command`` root attributes).
    """
    try:
        with h5py.File(path, "r") as f:
            content = _read_group(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 result file ({e})") from None
    if not content.get("landscape_version") or not content.get("command"):
        raise InputError(
            f"{path}: an HDF5 file, but not a landscape result (it has no 'landscape_version' "
            "and 'command' root attributes)"
        )
    return content


def to_json(value: Any) -> Any:
    """Numpy values -> JSON values; NaN/inf -> null; arrays longer than the limit dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, np.ndarray) and v.size > JSON_ARRAY_LIMIT:
                continue
            out[k] = to_json(v)
        return out
    if isinstance(value, (np.ndarray, list, tuple)):
        return [to_json(v) for v in np.asarray(value).tolist()]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


ROOT_SUMMARY = ("command", "model", "data", "n_params", "n_samples", "matvecs", "wall_seconds")


def summary(content: dict[str, Any]) -> dict[str, Any]:
    """The nested JSON summary of a read (or freshly built) result: groups plus cost at the top."""
    out: dict[str, Any] = {k: content[k] for k in ROOT_SUMMARY if k in content}
    for k, v in content.items():
        if isinstance(v, dict) and k != "checkpoints":
            out[k] = v
    return to_json(out)


def result_summary(result: Result, run: RunInfo) -> dict[str, Any]:
    """The JSON summary straight from a Result, identical to ``summary(read_result(file))``."""
    content: dict[str, Any] = dict(run.attrs())
    content.update(result.tree())
    return summary(_flatten_attrs(content))


def _flatten_attrs(tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if k == "attrs":
            out.update(v)
        elif isinstance(v, dict):
            out[k] = _flatten_attrs(v)
        elif v is not None:
            out[k] = v
    return out


@contextlib.contextmanager
def atomic(path: str):
    """A temporary path beside ``path``, renamed onto it when the block succeeds (else removed)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_checkpoint(path: str, state: dict[str, Any], spec: dict[str, Any]) -> None:
    """Write ``state`` as a self-describing checkpoint ``{"state_dict", "landscape": spec}``,
    atomically like every result file."""
    if not distributed.is_main():  # rank 0 alone writes
        return
    import torch

    with atomic(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in state.items()}, "landscape": spec}, tmp)


def update_result(path: str, result: Result, run: RunInfo, names: list[str]) -> None:
    """Create ``path`` (atomically, as :func:`write_result`) if it is not there; else overwrite
    the existing datasets ``names`` ("group/name", from ``result.tree()``) in place, in order,
    flushing after each. The file's structure never changes in place, only dataset values, so
    an interrupted update leaves a readable file (a caller writes a 'done' mask last)."""
    if not distributed.is_main():  # rank 0 alone writes
        return
    if not os.path.exists(path):
        write_result(path, result, run)
        return
    tree = result.tree()
    try:
        f = h5py.File(path, "r+", locking=False)
    except OSError as e:
        raise InputError(f"{path}: cannot be opened for update ({e})") from None
    with f:
        for name in names:
            value: Any = tree
            for part in name.split("/"):
                value = value[part]
            ds = f.get(name)
            array = np.asarray(value)
            if not isinstance(ds, h5py.Dataset) or ds.shape != array.shape:
                raise InputError(f"{path}: has no dataset {name} of shape {array.shape}")
            ds[...] = array
            f.flush()


def read_summary(path: str) -> dict[str, Any]:
    """The nested JSON summary of a result file (what ``--json`` printed when it was written)."""
    return summary(read_result(path))


def merge_trees(trees: list[dict[str, Any]]) -> dict[str, Any]:
    """Several Results' trees as one (groups merged key by key; a later value wins)."""
    out: dict[str, Any] = {}
    for tree in trees:
        for key, value in tree.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_trees([out[key], value])
            else:
                out[key] = value
    return out
