"""Directions in parameter space that sharpness and ghost measure along.

- ``gradient``: ∇L(θ) over the whole data set;
- ``update``: θ_next − θ from a second checkpoint, or the stored optimizer's next step rebuilt
  from its state (Adam/AdamW or momentum SGD, exactly as ``torch.optim`` steps, each parameter
  with its own group's hyperparameters: ``optimizer_step.py``), or −lr·∇L for plain SGD;
- Adam's preconditioner P (Cohen et al. 2022), re-exported from ``optimizer_step.py``;
- seeded Gaussian directions, and a direction read from a file (.pt/.npy, flat or by name).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..loading.optimizer import OptimizerState
from ..problem import Problem
from .optimizer_step import adam_preconditioner, adam_update, sgd_update
from .rmsprop_step import rmsprop_update

__all__ = [
    "Update",
    "adam_preconditioner",
    "adam_update",
    "difference",
    "from_file",
    "random_directions",
    "resolve_update",
    "sgd_update",
    "unit",
]


@dataclass
class Update:
    """A step Δθ (P,) and where it came from: ``next``, ``adam``, ``sgd``. ``zero``: the stored
    optimizer's lr is 0 (a schedule's end), so the step is zero and ``vector`` is its direction,
    the step it would take at lr 1."""

    vector: Tensor
    source: str
    zero: bool = False


def difference(problem: Problem, next_params: dict[str, Tensor]) -> Tensor:
    """θ_next − θ over the parameters of ``problem`` (``next_params`` keyed by name)."""
    missing = [n for n in problem.names if n not in next_params]
    if missing:
        raise InputError(f"the second checkpoint lacks parameters: {', '.join(missing[:5])}")
    for n, s in zip(problem.names, problem.shapes):
        if tuple(next_params[n].shape) != s:
            raise InputError(
                f"parameter {n} has shape {tuple(next_params[n].shape)} in the second "
                f"checkpoint but {s} in the first"
            )
    return problem.flatten({n: t.detach() for n, t in next_params.items()}) - problem.theta


def resolve_update(
    problem: Problem,
    grad: Tensor,
    next_theta_delta: Tensor | None = None,
    adam: OptimizerState | None = None,
    lr: float | None = None,
) -> Update | None:
    """The step training takes from θ: NEXT − CKPT, else the stored optimizer's rebuilt step
    (Adam/AdamW, RMSprop, or SGD from its momentum buffers; ``lr`` overrides its rates; at lr 0 its
    direction, ``zero`` set), else −lr·g."""
    if next_theta_delta is not None:
        return Update(next_theta_delta.to(problem.theta), "next")
    if adam is not None:
        zero = lr is None and adam.lr <= 0  # a schedule's end: the direction at unit rate
        rate = 1.0 if zero else lr
        if adam.is_adam:
            return Update(adam_update(problem, adam, grad, rate), "adam", zero)
        if adam.kind == "rmsprop":
            return Update(rmsprop_update(problem, adam, grad, rate), "rmsprop", zero)
        return Update(sgd_update(problem, adam, grad, rate), "sgd", zero)
    if lr is not None:
        return Update(-lr * grad.to(problem.theta), "sgd")
    return None


def random_directions(problem: Problem, n: int, seed: int) -> Tensor:
    """n standard Gaussian directions (n, P) from a CPU generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    out = torch.randn(n, problem.size, generator=gen, dtype=torch.float64)
    return out.to(problem.theta)


def from_file(problem: Problem, path: str) -> Tensor:
    """A direction from ``.npy`` (flat), or ``.pt`` (a flat tensor or a dict by parameter name)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such direction file")
    if path.endswith(".npy"):
        try:
            value = torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as e:
            raise InputError(f"{path}: not a readable .npy array ({e})") from None
    else:
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
            raise InputError(f"{path}: not a readable torch file ({type(e).__name__})") from None
    if isinstance(value, dict):
        if not all(isinstance(t, Tensor) for t in value.values()):
            raise InputError(f"{path}: a direction dict must map parameter names to tensors")
        missing = [n for n in problem.names if n not in value]
        if missing:
            raise InputError(f"{path}: the direction lacks parameters {', '.join(missing[:5])}")
        bad = [n for n, s in zip(problem.names, problem.shapes) if tuple(value[n].shape) != s]
        if bad:
            raise InputError(f"{path}: wrong shapes for {', '.join(bad[:5])}")
        vec = problem.flatten(value)
    elif isinstance(value, Tensor):
        if value.numel() != problem.size:
            raise InputError(
                f"{path}: a flat direction needs {problem.size} entries, got {value.numel()}"
            )
        vec = value.reshape(-1).to(problem.theta)
    else:
        raise InputError(f"{path}: expected a tensor, an array or a dict of tensors")
    if not torch.isfinite(vec).all():
        raise InputError(f"{path}: the direction has non-finite entries")
    return vec


def unit(vector: Tensor, name: str) -> Tensor:
    """vector / ‖vector‖, refusing a zero or non-finite vector."""
    norm = float(vector.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise InputError(f"the {name} direction is zero or not finite: it has no unit vector")
    return vector / norm
