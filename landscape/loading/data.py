"""Load a data set from a spec: a built-in synthetic set, a file, or a factory.

Built-ins (deterministic from ``seed``): ``gmm``, ``regression``, ``tokens``, ``images``.
Files: ``.npz`` with ``x``/``y``; ``.pt`` dict ``{x, y}`` or tuple ``(x, y)``; ``.h5``/``.hdf5``
with datasets ``x``/``y``; these are read into two tensors. Token files (``.npy``/``.pt`` ids,
``.npz``/``.pt`` with ``input_ids``) and ``datasets`` ``save_to_disk`` folders are read by
:mod:`landscape.loading.tokens`. Factories
(``pkg.module:f`` or ``file.py:f``) may return ``(x, y)`` (two tensors) or a torch Dataset, a
DataLoader, a list of batches or a function returning one: those stay a stream, read batch by
batch on every pass (see :mod:`landscape.stream`), so a data set larger than memory can be analysed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.loading import token_stream
from landscape.loading.imports import import_object, is_object_spec, one_line, resolve_path
from landscape.loading.tokens import is_saved_dataset, read_saved_dataset, read_tokens

FILE_SUFFIXES = (".npz", ".npy", ".pt", ".pth", ".h5", ".hdf5")


@dataclass
class DataSet:
    """Inputs ``x`` and targets ``y`` (same length along dim 0; integer ``y`` is classification),
    or, for a factory's DataLoader or Dataset, ``stream``: a source of batches for ``Problem``."""

    x: Tensor | None
    y: Tensor | None
    name: str
    task: str  # 'classification', 'regression', 'tokens' or 'stream' (the loss decides)
    stream: Any = None

    def __len__(self) -> int:
        if self.x is None:
            raise TypeError("a streamed data set has no length before it is read")
        return int(self.x.shape[0])

    @property
    def source(self) -> Any:
        """What ``Problem(model, data.source)`` reads: the tensors ``(x, y)`` or the stream."""
        return self.stream if self.x is None else (self.x, self.y)


def _gmm(g: torch.Generator, n: int = 512, dim: int = 16, classes: int = 4,
         spread: float = 2.0) -> tuple[Tensor, Tensor]:
    means = torch.randn(classes, dim, generator=g) * spread
    y = torch.randint(0, classes, (n,), generator=g)
    return means[y] + torch.randn(n, dim, generator=g), y


def _regression(g: torch.Generator, n: int = 512, dim: int = 16, out: int = 1,
                noise: float = 0.1) -> tuple[Tensor, Tensor]:
    x = torch.randn(n, dim, generator=g)
    w = torch.randn(dim, out, generator=g) / dim**0.5
    y = x @ w + 0.5 * torch.sin(x[:, :1] * 2.0) + noise * torch.randn(n, out, generator=g)
    return x, y


def _tokens(g: torch.Generator, n: int = 128, seq_len: int = 32, vocab: int = 64
            ) -> tuple[Tensor, Tensor]:
    # A random sparse Markov chain, so next-token prediction has something to learn.
    logits = torch.randn(vocab, vocab, generator=g) * 3.0
    probs = torch.softmax(logits, dim=1)
    seq = torch.empty(n, seq_len + 1, dtype=torch.long)
    seq[:, 0] = torch.randint(0, vocab, (n,), generator=g)
    for t in range(seq_len):
        seq[:, t + 1] = torch.multinomial(probs[seq[:, t]], 1, generator=g).squeeze(1)
    return seq[:, :-1].clone(), seq[:, 1:].clone()


def _images(g: torch.Generator, n: int = 512, classes: int = 10, channels: int = 3,
            size: int = 32, noise: float = 0.5) -> tuple[Tensor, Tensor]:
    coarse = torch.randn(classes, channels, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                                align_corners=False)
    y = torch.randint(0, classes, (n,), generator=g)
    return templates[y] + noise * torch.randn(n, channels, size, size, generator=g), y


BUILTIN: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "gmm": _gmm, "regression": _regression, "tokens": _tokens, "images": _images,
}


def _builtin(name: str, kwargs: dict[str, Any], seed: int) -> tuple[Tensor, Tensor]:
    maker = BUILTIN[name]
    allowed = [p for p in inspect.signature(maker).parameters if p != "g"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise InputError(f"data set {name!r} has no option(s) {unknown}; options: {allowed}")
    g = torch.Generator().manual_seed(int(seed))
    try:
        return maker(g, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"data set {name!r} with {kwargs}: {one_line(exc)}") from exc


def _read_file(path: str) -> tuple[Any, Any]:
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                found = {k: f[k] for k in ("x", "y") if k in f.files}
                keys = list(f.files)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                found = {k: f[k][()] for k in ("x", "y") if k in f}
                keys = list(f.keys())
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, (tuple, list)) and len(obj) == 2:
                return obj[0], obj[1]
            if not isinstance(obj, dict):
                raise InputError(f"data file {path}: expected a dict {{x, y}} or a tuple (x, y), "
                                 f"got {type(obj).__name__}")
            found, keys = {k: obj[k] for k in ("x", "y") if k in obj}, list(map(str, obj))
    except InputError:
        raise
    except Exception as exc:  # numpy, h5py and torch raise many types for bad files
        raise InputError(f"cannot read data file {path}: {one_line(exc)}") from exc
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise InputError(f"data file {path} lacks {' and '.join(repr(k) for k in missing)} "
                         f"(it has: {', '.join(keys) or 'nothing'})")
    return found["x"], found["y"]


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        t = value.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(value))
        except Exception as exc:
            raise InputError(f"{what} cannot be turned into a tensor: {one_line(exc)}") from exc
    if t.dtype == torch.bool:
        return t.to(torch.float32)
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.long) if not t.is_complex() else t


def _tensor_pair(obj: Any) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and not isinstance(obj[0], tuple) \
        and not isinstance(obj[0], dict) and not isinstance(obj[0], list)


def _stream(obj: Any, spec: str) -> Any:
    """What a factory returned, checked to be a source of batches (not read here)."""
    is_source = isinstance(obj, (torch.utils.data.DataLoader, torch.utils.data.Dataset)) or (
        hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, Tensor))
    ) or callable(obj)
    if not is_source:
        raise InputError(f"data factory {spec!r} returned {type(obj).__name__}; "
                         "expected a Dataset, a DataLoader, a list of batches or (x, y)")
    if hasattr(obj, "__len__") and len(obj) == 0:
        raise InputError(f"data set {spec!r} is empty (0 samples)")
    return obj


def load_data(spec: str, kwargs: dict[str, Any] | None = None, max_samples: int | None = None,
              seed: int = 0, base_dir: str | None = None) -> DataSet:
    """Load the data set named by ``spec``: two tensors, or a stream for a factory's loader.

    ``kwargs`` override a built-in's defaults or go to a factory. ``max_samples`` keeps the
    first N samples (a stream is cut by ``Problem(max_samples=...)``). Floating tensors become
    float32, integers int64. Raises ``InputError`` for a missing file, missing ``x``/``y``,
    lengths that differ, or an empty set.
    """
    kwargs = dict(kwargs or {})
    if max_samples is not None and max_samples <= 0:
        raise InputError(f"`max_samples` must be positive, got {max_samples}")
    if spec in BUILTIN:
        x, y = _builtin(spec, kwargs, seed)
    elif is_saved_dataset(folder := resolve_path(spec, base_dir) or ""):  # save_to_disk
        rows = read_saved_dataset(folder, kwargs.get("split"), max_samples)
        return DataSet(None, None, name=spec, task="tokens", stream=rows)
    elif spec.lower().endswith((*FILE_SUFFIXES, token_stream.SUFFIX)):
        found = resolve_path(spec, base_dir)
        if found is None or not os.path.isfile(found):
            where = f" (looked in {base_dir} and the working directory)" if base_dir else ""
            raise InputError(f"data file {spec} not found{where}")
        if found.lower().endswith(token_stream.SUFFIX):  # nanoGPT's train.bin: ids, no header
            ids = token_stream.read_stream(found, kwargs, max_samples)
            tokens: tuple[Any, Any] | None = (ids, ids.clone())
        else:
            tokens = read_tokens(found, max_samples)
        if tokens is not None and tokens[1] is None:  # input_ids with mask/labels: dict rows
            return DataSet(None, None, name=spec, task="tokens", stream=tokens[0])
        x, y = tokens if tokens is not None else _read_file(found)
    elif is_object_spec(spec):
        factory = import_object(spec, base_dir)
        try:
            obj = factory(**kwargs) if callable(factory) else factory
        except InputError:
            raise
        except Exception as exc:  # user code
            raise InputError(f"data factory {spec!r} raised: {one_line(exc)}") from exc
        if not _tensor_pair(obj):
            return DataSet(None, None, name=spec, task="stream", stream=_stream(obj, spec))
        x, y = obj
    else:
        raise InputError(f"unknown data {spec!r}: expected one of {sorted(BUILTIN)}, a file "
                         f"({', '.join(FILE_SUFFIXES)}, or .bin token ids) or pkg.module:factory "
                         "/ file.py:factory")
    x, y = _as_tensor(x, f"x of {spec}"), _as_tensor(y, f"y of {spec}")
    if x.dim() == 0 or y.dim() == 0:
        raise InputError(f"data {spec}: x and y must have a sample dimension")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"data {spec}: x has {x.shape[0]} samples but y has {y.shape[0]}")
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    if x.shape[0] == 0:
        raise InputError(f"data set {spec} is empty (0 samples)")
    task = "regression" if y.is_floating_point() else "classification"
    return DataSet(x.contiguous(), y.contiguous(), name=spec, task=task)
