"""Directions in parameter space that sharpness and ghost measure along.

- ``gradient``: ∇L(θ) over the whole data set;
- ``update``: θ_next − θ from a second checkpoint, or Adam's next step rebuilt from the optimizer
  state (Kingma and Ba 2015, exactly as ``torch.optim.Adam``/``AdamW`` step: bias-corrected
  moments, L2 or decoupled weight decay), or −lr·∇L for plain SGD;
- Adam's preconditioner P = (1 − β1^t)·(sqrt(v_t / (1 − β2^t)) + ε), so that Adam's step is
  −lr·P⁻¹ m (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability");
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
from ..loading.optimizer import AdamState
from ..problem import Problem


@dataclass
class Update:
    """A step Δθ (P,) and where it came from: ``next``, ``adam``, ``sgd``."""

    vector: Tensor
    source: str


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


def _state_vectors(problem: Problem, state: AdamState) -> tuple[Tensor, Tensor, Tensor]:
    """(m, v, step) flattened in θ's order; parameters without state count as fresh (0, 0, 0)."""
    zeros = {n: torch.zeros(s) for n, s in zip(problem.names, problem.shapes)}
    m = problem.flatten(
        {**zeros, **{n: state.exp_avg[n] for n in problem.names if n in state.exp_avg}}
    )
    v = problem.flatten(
        {**zeros, **{n: state.exp_avg_sq[n] for n in problem.names if n in state.exp_avg_sq}}
    )
    steps = {
        n: torch.full(s, float(state.step) if n in state.exp_avg else 0.0)
        for n, s in zip(problem.names, problem.shapes)
    }
    return m, v, problem.flatten(steps)


def adam_update(
    problem: Problem, state: AdamState, grad: Tensor, lr: float | None = None
) -> Tensor:
    """θ_{t+1} − θ_t of one more Adam(W) step from ``state`` with the gradient ``grad``.

    g' = g + wd·θ (Adam, L2); m' = β1 m + (1−β1) g'; v' = β2 v + (1−β2) g'²; t' = t + 1;
    Δθ = −lr/(1−β1^t') · m' / (sqrt(v'/(1−β2^t')) + ε), minus lr·wd·θ for AdamW (decoupled).
    ``lr`` overrides the state's learning rate.
    """
    if state.amsgrad:
        raise InputError("the Adam state uses amsgrad, whose running maximum is not supported")
    lr = state.lr if lr is None else lr
    b1, b2 = state.betas
    theta = problem.theta
    m, v, t = _state_vectors(problem, state)
    g = grad.to(theta)
    decoupled = state.kind == "adamw"
    if state.weight_decay and not decoupled:
        g = g + state.weight_decay * theta
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    t = t + 1
    bc1 = 1 - b1**t
    bc2 = 1 - b2**t
    step = -(lr / bc1) * m / (v.sqrt() / bc2.sqrt() + state.eps)
    if state.weight_decay and decoupled:
        step = step - lr * state.weight_decay * theta
    return step


def adam_preconditioner(problem: Problem, state: AdamState) -> Tensor:
    """Cohen et al.'s diagonal P = (1 − β1^t)·(sqrt(v_t / (1 − β2^t)) + ε) at the stored step t."""
    b1, b2 = state.betas
    _, v, t = _state_vectors(problem, state)
    t = t.clamp(min=1)
    return (1 - b1**t) * ((v / (1 - b2**t)).sqrt() + state.eps)


def resolve_update(
    problem: Problem,
    grad: Tensor,
    next_theta_delta: Tensor | None = None,
    adam: AdamState | None = None,
    lr: float | None = None,
) -> Update | None:
    """The step training takes from θ: NEXT − CKPT, else Adam's rebuilt step, else −lr·g."""
    if next_theta_delta is not None:
        return Update(next_theta_delta.to(problem.theta), "next")
    if adam is not None:
        return Update(adam_update(problem, adam, grad, lr), "adam")
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
