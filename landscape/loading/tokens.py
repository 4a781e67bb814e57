"""Token data files for language models: ids alone, or ``input_ids`` with a mask and labels.

- ``.npy`` or ``.pt`` holding one integer array ``(N, T)`` of ids, every token real: inputs and
  labels are both the ids (``causal-lm`` shifts them by one), kept as two in-memory tensors;
- ``.npz`` (without ``x``/``y``) or a ``.pt`` dict with ``input_ids`` ``(N, T)`` and optional
  ``attention_mask`` ``(N, T)`` and ``labels`` (``(N, T)`` per token, or ``(N,)`` per sequence for
  a classification head; default: the ids): rows become dict batches
  ``{input_ids, attention_mask, labels}`` that ``--batch-size`` cuts. Where the mask is 0 the
  label becomes −100 (:mod:`landscape.batches`), so padding never counts;
- a folder written by ``datasets``' ``save_to_disk`` (when ``datasets`` is installed): the same
  columns, rows of different lengths padded on the right.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from landscape.errors import InputError
from landscape.loading.imports import one_line

FIELDS = ("input_ids", "attention_mask", "labels")
LABELS = ("labels", "label", "label_ids")  # as transformers' data collators read them


def _labels_key(names: Any) -> str | None:
    """The labels column: ``labels``, else ``label`` or ``label_ids`` (a classification set's,
    which the Trainer's collator renames to ``labels``)."""
    return next((k for k in LABELS if k in names), None)


class TokenRows(Dataset):
    """Rows ``{input_ids, attention_mask, labels}`` of equal-length tensors; a DataLoader's
    default collate stacks them into dict batches."""

    def __init__(self, fields: dict[str, Tensor]) -> None:
        self.fields = fields

    def __len__(self) -> int:
        return int(self.fields["input_ids"].shape[0])

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.fields.items()}


def _integers(value: Any, what: str) -> Tensor:
    t = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    if t.is_floating_point() or t.is_complex():
        raise InputError(f"{what} must hold integers, got {str(t.dtype).replace('torch.', '')}")
    return t.detach().cpu().to(torch.long)


def _ids(value: Any, path: str) -> Tensor:
    ids = _integers(value, f"token ids in {path}")
    if ids.dim() != 2:
        raise InputError(f"token ids in {path} must be (N, T), got shape {tuple(ids.shape)}")
    if ids.shape[0] == 0:
        raise InputError(f"data set {path} is empty (0 samples)")
    return ids.contiguous()


def _rows(found: dict[str, Any], path: str, max_samples: int | None) -> TokenRows:
    ids = _ids(found["input_ids"], path)
    fields = {"input_ids": ids}
    if found.get("attention_mask") is not None:
        mask = torch.as_tensor(np.asarray(found["attention_mask"])).ne(0).to(torch.long)
        if tuple(mask.shape) != tuple(ids.shape):
            raise InputError(f"{path}: attention_mask has shape {tuple(mask.shape)}, "
                             f"input_ids {tuple(ids.shape)}")
        fields["attention_mask"] = mask
    key = _labels_key(found)
    labels = None if key is None else found[key]
    labels = ids.clone() if labels is None else _integers(labels, f"{path}: {key}")
    if labels.shape[0] != ids.shape[0]:
        raise InputError(f"{path}: {labels.shape[0]} labels for {ids.shape[0]} rows of input_ids")
    fields["labels"] = labels
    if max_samples is not None:
        fields = {k: v[:max_samples] for k, v in fields.items()}
    return TokenRows({k: v.contiguous() for k, v in fields.items()})


def read_tokens(path: str, max_samples: int | None = None) -> tuple[Any, Any] | None:
    """``(ids, ids)`` for a file of ids, ``(TokenRows, None)`` for ``input_ids`` with optional
    mask and labels, or None when ``path`` is not token data (an ``x``/``y`` file)."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            obj: Any = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "input_ids" not in f.files or {"x", "y"} <= set(f.files):
                    return None
                obj = {k: f[k] for k in (*FIELDS, *LABELS) if k in f.files}
        elif suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            return None
    except Exception as exc:  # numpy and torch raise many types for bad files
        raise InputError(f"cannot read data file {path}: {one_line(exc)}") from exc
    if isinstance(obj, dict) and "input_ids" in obj and not {"x", "y"} <= set(obj):
        return _rows(obj, path, max_samples), None
    if isinstance(obj, (np.ndarray, Tensor)):
        ids = _ids(obj, path)[:max_samples]
        return ids, ids.clone()
    return None


def is_saved_dataset(path: str) -> bool:
    """Whether ``path`` is a folder written by ``datasets``' ``save_to_disk``."""
    marks = ("dataset_info.json", "state.json", "dataset_dict.json")
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in marks)


def _padded(rows: list, fill: int) -> Tensor:
    """Rows of different lengths as one (N, T_max) tensor, padded on the right with ``fill``."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return out


def read_saved_dataset(path: str, split: str | None = None,
                       max_samples: int | None = None) -> TokenRows:
    """The ``input_ids``/``attention_mask``/``labels`` columns of a ``save_to_disk`` folder as
    dict rows; rows of different lengths are padded on the right (mask 0, labels −100).
    ``split`` picks one split of a ``DatasetDict`` (``--data-kwargs '{"split": "test"}'``)."""
    try:
        import datasets
    except ImportError:
        raise InputError(f"{path} is a datasets folder: reading it needs 'datasets' "
                         "(pip install datasets)") from None
    try:
        ds = datasets.load_from_disk(path)
    except Exception as exc:  # the library raises many types for bad folders
        raise InputError(f"cannot read the datasets folder {path}: {one_line(exc)}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) != 1:
            raise InputError(f"{path} holds the splits {', '.join(ds)}: choose one with "
                             "--data-kwargs '{\"split\": NAME}'")
        if split is not None and split not in ds:
            raise InputError(f"{path} has no split {split!r} (it has {', '.join(ds)})")
        ds = ds[split if split is not None else next(iter(ds))]
    if "input_ids" not in ds.column_names:
        raise InputError(f"{path}: no 'input_ids' column (it has {', '.join(ds.column_names)})")
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    ids = list(ds["input_ids"])
    found: dict[str, Any] = {"input_ids": _padded(ids, 0)}
    lengths = torch.tensor([len(r) for r in ids])
    real = torch.arange(found["input_ids"].shape[1])[None, :] < lengths[:, None]
    mask = _padded(list(ds["attention_mask"]), 0) if "attention_mask" in ds.column_names \
        else real.long()
    found["attention_mask"] = mask
    key = _labels_key(ds.column_names)
    if key is not None:
        labels = list(ds[key])
        per_token = bool(labels) and isinstance(labels[0], (list, tuple))
        found["labels"] = _padded(labels, -100) if per_token else torch.as_tensor(labels)
    return _rows(found, path, None)
