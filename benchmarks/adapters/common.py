"""Helpers shared by the reference-tool adapters: call counting and a plain autograd gradient."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def package_available(module: str) -> bool:
    """True when ``module`` imports."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``."""
    from importlib.metadata import version

    return version(distribution)


class Counter:
    """Counts Hessian-vector products made through the functions it wraps."""

    def __init__(self) -> None:
        self.n = 0

    def wrap(self, fn: Callable[..., Any], width: Callable[..., int] | None = None
             ) -> Callable[..., Any]:
        """``fn`` that adds ``width(*args)`` (default 1) to the count on every call."""

        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.n += 1 if width is None else width(*args, **kwargs)
            return fn(*args, **kwargs)

        return counted

    def take(self) -> int:
        """The count so far; resets it to zero."""
        n, self.n = self.n, 0
        return n


def autograd_gradient(model: nn.Module, batches: list[tuple[Tensor, Tensor]],
                      criterion: nn.Module) -> list[Tensor]:
    """The whole-data-set mean-loss gradient by plain forward + backward (equal batches)."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        grads = torch.autograd.grad(criterion(model(x), y), params)
        for t, g in zip(total, grads):
            t.add_(g, alpha=1.0 / len(batches))
    return total


def rademacher(n: int, P: int, device: torch.device, seed: int = 0) -> Tensor:
    """n Rademacher rows of length P (float32) from a seeded CPU generator."""
    gen = torch.Generator().manual_seed(seed)
    return (2.0 * torch.randint(0, 2, (n, P), generator=gen) - 1.0).to(device)
