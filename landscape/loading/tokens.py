"""Token data files for language models: ids alone, or ``input_ids`` with a mask and labels.

- ``.npy`` or ``.pt`` holding one integer array ``(N, T)`` of ids, every token real: inputs and
  labels are both the ids (``causal-lm`` shifts them by one), kept as two in-memory tensors;
- ``.npz`` (without ``x``/``y``) or a ``.pt`` dict with ``input_ids`` ``(N, T)`` and optional
  ``attention_mask`` ``(N, T)`` and ``labels`` (``(N, T)`` per token, or ``(N,)`` per sequence for
  a classification head; default: the ids): rows become dict batches
  ``{input_ids, attention_mask, labels}`` that ``--batch-size`` cuts. Where the mask is 0 the
  label becomes −100 (:mod:`landscape.batches`), so padding never counts.
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
    labels = found.get("labels")
    labels = ids.clone() if labels is None else _integers(labels, f"{path}: labels")
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
                obj = {k: f[k] for k in FIELDS if k in f.files}
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
