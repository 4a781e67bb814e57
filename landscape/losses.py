"""Losses by name: each maps (output, target) to the mean loss over the batch's samples.

``cross-entropy`` flattens leading dimensions, so (B, C) outputs with (B,) targets and (B, T, V)
outputs with (B, T) targets (a language model) both work; ``mse`` is the mean over all elements.
A batch's loss is a mean over its samples, so the whole-set mean weights batches by size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError

LossFn = Callable[[Tensor, Tensor], Tensor]


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Mean of -log softmax(output)[target] over every target position."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Mean of (output - target)^2 over all elements."""
    # written out: F.mse_loss's backward builds ZeroTensors that forward-over-reverse cannot use
    return ((output - target.reshape(output.shape)) ** 2).mean()


LOSSES: dict[str, LossFn] = {"cross-entropy": cross_entropy, "mse": mse}


def resolve_loss(loss: str | LossFn | None, target: Tensor) -> tuple[str, LossFn]:
    """A loss name (or None: cross-entropy for integer targets, mse otherwise) or a SPEC."""
    if callable(loss):
        return getattr(loss, "__name__", "custom"), loss
    if loss is None:
        loss = "mse" if torch.is_floating_point(target) else "cross-entropy"
    if loss in LOSSES:
        if loss == "cross-entropy" and torch.is_floating_point(target):
            raise InputError("--loss cross-entropy needs integer class targets; got float targets")
        return loss, LOSSES[loss]
    if ":" in loss:
        from .loading.imports import import_object

        fn = import_object(loss)
        if not callable(fn):
            raise InputError(f"--loss {loss!r} is not a function (output, target) -> loss")
        return loss, fn
    names = ", ".join(LOSSES)
    raise InputError(f"unknown loss {loss!r}: use one of {names}, or pkg.module:function")
