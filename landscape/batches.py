"""One batch: the model's inputs and the targets, whatever shape the user's data gives them.

A batch is ``(inputs, targets)`` or a dict of keyword inputs with the targets under ``labels``.
``inputs`` is a tensor (``model(x)``), a tuple of tensors (``model(*x)``) or a dict
(``model(**x)``, as Hugging Face models take ``input_ids`` and ``attention_mask``). In a dict
batch with an ``attention_mask`` of the labels' shape, masked positions become −100 (ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .errors import InputError
from .losses import IGNORE

Inputs = Any  # Tensor | tuple[Tensor, ...] | dict[str, Any]
Batch = tuple[Inputs, Tensor]


def split_batch(item: Any, what: str = "data") -> Batch:
    """``item`` as ``(inputs, targets)``; raises ``InputError`` naming what it got."""
    if isinstance(item, dict):
        if "labels" in item:
            inputs = {k: v for k, v in item.items() if k != "labels"}
            labels = _tensor(item["labels"], what)
            return inputs, _masked_labels(labels, inputs.get("attention_mask"))
        if "x" in item and "y" in item:
            return item["x"], _tensor(item["y"], what)
        keys = ", ".join(map(str, item)) or "nothing"
        raise InputError(f"{what} yields dict batches without 'labels' (they hold: {keys})")
    if isinstance(item, (tuple, list)) and len(item) == 2:
        inputs = tuple(item[0]) if isinstance(item[0], list) else item[0]
        return inputs, _tensor(item[1], what)
    raise InputError(
        f"{what} yields {type(item).__name__}; expected (inputs, targets) pairs or dicts with "
        "'labels'"
    )


def _tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        kind = type(value).__name__
        raise InputError(f"{what}: targets of type {kind} are not a tensor") from exc


def _masked_labels(labels: Tensor, mask: Any) -> Tensor:
    if isinstance(mask, Tensor) and mask.shape == labels.shape and not labels.is_floating_point():
        return labels.masked_fill(mask == 0, IGNORE)
    return labels


def map_inputs(inputs: Inputs, fn: Callable[[Tensor], Tensor]) -> Inputs:
    """``inputs`` with ``fn`` applied to every tensor (structure kept, other values as they are)."""
    if isinstance(inputs, Tensor):
        return fn(inputs)
    if isinstance(inputs, tuple):
        return tuple(map_inputs(v, fn) for v in inputs)
    if isinstance(inputs, dict):
        return {k: map_inputs(v, fn) for k, v in inputs.items()}
    return inputs


def tensors(inputs: Inputs) -> list[Tensor]:
    """Every tensor in ``inputs``, in a fixed order."""
    found: list[Tensor] = []
    map_inputs(inputs, lambda t: found.append(t) or t)
    return found


def call_args(inputs: Inputs) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) for ``model(*args, **kwargs)``."""
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype) -> Batch:
    """The batch on ``device``; floating tensors in ``dtype``, integer ones as they are."""

    def cast(t: Tensor) -> Tensor:
        t = t.to(device)
        return t.to(dtype) if t.is_floating_point() else t

    inputs, targets = batch
    return map_inputs(inputs, cast), cast(targets)


def head(inputs: Inputs, n: int) -> Inputs:
    """The first ``n`` rows of every tensor in ``inputs``."""
    return map_inputs(inputs, lambda t: t[:n] if t.dim() else t)


def nbytes(batch: Batch) -> int:
    """Bytes held by the batch's tensors."""
    inputs, targets = batch
    return sum(t.numel() * t.element_size() for t in [*tensors(inputs), targets])


def same(a: Batch, b: Batch) -> bool:
    """Whether two batches hold equal tensors in the same structure."""
    ta, tb = [*tensors(a[0]), a[1]], [*tensors(b[0]), b[1]]
    return len(ta) == len(tb) and all(
        x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(ta, tb)
    )


def concat(parts: list[Inputs]) -> Inputs:
    """Batches' inputs joined along the sample dimension (the same structure in each)."""
    first = parts[0]
    if isinstance(first, Tensor):
        return torch.cat(parts)
    if isinstance(first, tuple):
        return tuple(concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: concat([p[k] for p in parts]) for k in first}
    return first


def as_output(out: Any) -> tuple[Tensor, str | None]:
    """The tensor a loss reads from a forward's result, and a note when it was picked out:
    ``.logits`` of a ``ModelOutput`` or dict, else the first tensor of a tuple or dict."""
    if isinstance(out, Tensor):
        return out, None
    logits = out.get("logits") if isinstance(out, dict) else getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits, f"the model returns {type(out).__name__}: its .logits is used"
    values = list(out.values()) if isinstance(out, dict) else out
    if isinstance(values, (tuple, list)):
        for i, v in enumerate(values):
            if isinstance(v, Tensor):
                return v, f"the model returns {type(out).__name__}: its tensor #{i} is used"
    raise InputError(
        f"the model returns {type(out).__name__}, not a tensor, a ModelOutput with .logits, "
        "a dict or a tuple holding one"
    )
