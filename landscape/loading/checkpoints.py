"""Read checkpoints safely and load their weights into a model.

``load_checkpoint`` recognises plain state dicts, ``{"state_dict"|"model": ...}`` wrappers,
PyTorch Lightning ``.ckpt`` files, ``.safetensors``, the self-describing
``{"state_dict", "landscape", "optimizer"}`` dict and Hugging Face folders (``loading/hf.py``).
Everything goes through ``torch.load(weights_only=True)``; whole pickled modules and TorchScript
archives load only with ``trust=True``. ``load_into`` (from ``state_dicts.py``) loads the weights
into a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from landscape.errors import InputError
from landscape.loading.imports import one_line
from landscape.loading.pickles import offending_globals, pickle_globals
from landscape.loading.state_dicts import load_into, match_keys

__all__ = ["Checkpoint", "file_sha256", "load_checkpoint", "load_into", "match_keys"]

_TRUST_HINT = "loading it runs code: pass `trust` if you trust it"


@dataclass
class Checkpoint:
    """What a checkpoint file holds. ``state_dict`` keys are as stored (prefixes kept)."""

    path: str
    format: str
    sha256: str
    state_dict: dict[str, Tensor]
    spec: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    module: nn.Module | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _is_safetensors(path: str) -> bool:
    if path.endswith(".safetensors"):
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < 1 << 30 and head[8:] == b"{"


def _tensor_dict(obj: Any) -> dict[str, Tensor] | None:
    """``obj`` as a name -> tensor dict, or None if it is not one."""
    if not isinstance(obj, dict) or not obj:
        return None
    if all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return dict(obj)
    return None


def _plain(obj: Any) -> bool:
    return isinstance(obj, (str, int, float, bool)) or obj is None


def _from_module(path: str, fmt: str, sha: str, module: nn.Module) -> Checkpoint:
    sd = {k: v.detach() for k, v in module.state_dict().items()}
    return Checkpoint(path, fmt, sha, sd, module=module)


def _load_safetensors(path: str, sha: str) -> Checkpoint:
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise InputError(f"{path}: reading .safetensors needs the 'safetensors' package") from exc
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            sd = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # the library raises several types for corrupt files
        raise InputError(f"{path}: not a readable safetensors file ({one_line(exc)})") from exc
    spec: dict[str, Any] = {}
    if "landscape" in metadata:
        try:
            spec = json.loads(metadata.pop("landscape"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: metadata key 'landscape' is not valid JSON ({exc})") from exc
        if not isinstance(spec, dict):
            raise InputError(f"{path}: metadata key 'landscape' must hold a JSON object")
    if not sd:
        raise InputError(f"{path}: the safetensors file holds no tensors")
    return Checkpoint(path, "safetensors", sha, sd, spec=spec, metadata=metadata)


def _refused(path: str, exc: Exception) -> InputError:
    """Explain why weights-only unpickling refused ``path``, without running anything."""
    globals_ = pickle_globals(path)
    module, unsafe = offending_globals(globals_ or [])
    shown = ", ".join(unsafe[:3]) + (f" (and {len(unsafe) - 3} more)" if len(unsafe) > 3 else "")
    if module and unsafe:
        return InputError(
            f"{path} is a pickled module/TorchScript archive, and unpickling it would also call "
            f"{shown}, which can run arbitrary code; not loaded (pass `trust` only "
            "if you trust its source)"
        )
    if module:
        return InputError(f"{path} is a pickled module/TorchScript archive; {_TRUST_HINT}")
    if unsafe:
        return InputError(
            f"{path}: refused by weights-only loading: unpickling it would call {shown}, "
            "which can run arbitrary code; not loaded (pass `trust` only if you "
            "trust its source)"
        )
    if globals_:  # only allowed globals, yet refused: quote torch's reason
        return InputError(f"{path}: refused by weights-only loading ({one_line(exc)})")
    return InputError(f"{path}: not a PyTorch checkpoint (corrupt, truncated or another format)")


def _torch_load(path: str, trust: bool) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": we explain below
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise _refused(path, exc) from exc
    except Exception as exc:  # garbage bytes make the unpickler fail in many ways
        raise InputError(f"{path}: cannot read checkpoint ({one_line(exc)}); "
                         "the file may be truncated or corrupt") from exc
    try:  # trusted: the user has accepted that unpickling runs code
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot unpickle trusted checkpoint ({one_line(exc)})") from exc


def _interpret(path: str, sha: str, obj: Any) -> Checkpoint:
    if isinstance(obj, nn.Module):
        return _from_module(path, "pickled-module", sha, obj)
    sd = _tensor_dict(obj)
    if sd is not None:
        return Checkpoint(path, "state_dict", sha, sd)
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        raise InputError(f"{path}: holds a {kind}, not a state dict or a dict holding one")
    spec = obj.get("landscape") or {}
    if not isinstance(spec, dict):
        raise InputError(f"{path}: the 'landscape' entry must be a dict, got {type(spec).__name__}")
    optimizer = obj.get("optimizer", obj.get("optimizer_state_dict"))
    lightning = "pytorch-lightning_version" in obj or "optimizer_states" in obj
    if optimizer is None and obj.get("optimizer_states"):
        optimizer = obj["optimizer_states"][0]
    metadata = {k: v for k, v in obj.items() if _plain(v)}
    args = obj.get("model_args")  # nanoGPT's: the GPTConfig its model was built from
    if isinstance(args, dict) and all(isinstance(k, str) and _plain(v) for k, v in args.items()):
        metadata["model_args"] = dict(args)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), nn.Module):
            ckpt = _from_module(path, "pickled-module", sha, obj[key])
            ckpt.spec, ckpt.metadata = spec, metadata
            return ckpt
        sd = _tensor_dict(obj.get(key))
        if sd is not None:
            fmt = "self-describing" if spec else "lightning" if lightning else f"dict[{key}]"
            opt = optimizer if isinstance(optimizer, dict) else None
            return Checkpoint(path, fmt, sha, sd, spec=spec, optimizer=opt, metadata=metadata)
    keys = ", ".join(sorted(map(str, obj))[:8])
    raise InputError(f"{path}: no state dict under 'state_dict' or 'model'; top-level keys: {keys}")


def load_checkpoint(path: str, trust: bool = False) -> Checkpoint:
    """Read ``path`` safely and return its weights, spec, optimizer state and metadata.

    Raises ``InputError`` for a missing, empty, corrupt or truncated file, for a file whose
    unpickling would run code, and (without ``trust``) for pickled modules and TorchScript.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        from landscape.loading import accelerate_state, dcp, hf  # folders of other tools

        if hf.is_folder(path):
            return hf.read_folder(path)
        if accelerate_state.is_folder(path):
            return accelerate_state.read_folder(path, trust)
        if dcp.is_folder(path):
            state = dcp.as_saved_dict(dcp.read_state(path, trust))
            ckpt = _interpret(path, dcp.digest(path), state)
            ckpt.format = f"{dcp.FORMAT} {ckpt.format}"
            return ckpt
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise InputError(f"{path} is a PEFT adapter, not a whole model: merge it into its "
                             "base model and save that (model.merge_and_unload()"
                             ".save_pretrained(folder)), then pass the folder")
        raise InputError(f"checkpoint {path} is a directory, not a file, a Hugging Face folder "
                         "(config.json and weights), a torch.distributed.checkpoint folder "
                         "(.metadata and .distcp files) nor accelerate's save_state")
    try:
        size = os.path.getsize(path)
        sha = file_sha256(path)
    except OSError as exc:
        raise InputError(f"checkpoint {path} is not readable ({one_line(exc)})") from exc
    if size == 0:
        raise InputError(f"checkpoint {path} is empty (0 bytes)")
    if _is_safetensors(path):
        return _load_safetensors(path, sha)
    if _is_torchscript(path):
        if not trust:
            raise InputError(f"{path} is a pickled module/TorchScript archive; {_TRUST_HINT}")
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(path, map_location="cpu")
        except Exception as exc:
            raise InputError(f"{path}: cannot load TorchScript archive ({one_line(exc)})") from exc
        return _from_module(path, "torchscript", sha, module)
    return _interpret(path, sha, _torch_load(path, trust))
