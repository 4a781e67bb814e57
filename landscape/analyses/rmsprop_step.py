"""RMSprop's next step, its preconditioner and its edge of stability, as flat vectors over θ.

``torch.optim.RMSprop`` (Tieleman and Hinton 2012; centered, Graves 2013): with g' = ±g + wd·θ,
v' = α v + (1 − α) g'², a = sqrt(v' − ḡ'²) + ε centered (ḡ' = α ḡ + (1 − α) g') else
sqrt(v') + ε, the step is −lr·g'/a, or −lr·b' with momentum μ, b' = μ b + g'/a.

Frozen at the stored v (P = sqrt(v − ḡ²) + ε), the step is preconditioned gradient descent with
heavy-ball momentum μ, stable on a quadratic while λ_max(P^-1/2 (H + wd) P^-1/2) ≤ (2 + 2μ)/lr
(2/lr without momentum: Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of
Stability", whose RMSProp is this with μ = 0). Weight decay is L2 (part of the gradient).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError
from ..loading.optimizer import OptimizerState
from ..problem import Problem
from .optimizer_step import _state_vectors, weight_decay


def _check(state: OptimizerState) -> None:
    if state.kind != "rmsprop":
        raise InputError(f"the optimizer state is {state.kind}'s, not RMSprop's")


def rmsprop_update(problem: Problem, state: OptimizerState, grad: Tensor,
                   lr: float | None = None) -> Tensor:
    """θ_{t+1} − θ_t of one more RMSprop step from ``state`` with the gradient ``grad`` (each
    parameter its group's lr, α, ε, wd, μ; ``lr`` overrides every group's rate)."""
    _check(state)
    s = _state_vectors(problem, state)
    theta = problem.theta
    lr_v = s["lr"] if lr is None else s["covered"] * lr
    g = grad.to(theta) * s["sign"] + s["wd"] * theta
    v = s["alpha"] * s["sq"] + (1 - s["alpha"]) * g * g
    gavg = s["alpha"] * s["gavg"] + (1 - s["alpha"]) * g
    var = torch.where(s["centered"] > 0, v - gavg * gavg, v)
    a = var.clamp(min=0).sqrt() + s["eps"]
    b = torch.where(s["mu"] > 0, s["mu"] * s["buf"] + g / a, g / a)
    return -lr_v * b * s["covered"]


def rmsprop_preconditioner(problem: Problem, state: OptimizerState,
                           lr: float | None = None) -> Tensor:
    """P = sqrt(v − ḡ²) + ε (centered) or sqrt(v) + ε at the stored v; where groups' rates
    differ (and ``lr`` does not override them), P·lr_ref/lr_i, lr_ref the largest, so that every
    step is −lr_ref·P⁻¹g; uncovered parameters get P = ∞."""
    _check(state)
    s = _state_vectors(problem, state)
    var = torch.where(s["centered"] > 0, s["sq"] - s["gavg"] * s["gavg"], s["sq"])
    p = var.clamp(min=0).sqrt() + s["eps"]
    if lr is None:
        p = p * (state.lr / s["lr"])
    return torch.where(s["covered"] > 0, p, torch.full_like(p, math.inf))


def rmsprop_l2(problem: Problem, state: OptimizerState) -> Tensor:
    """RMSprop's per-coordinate weight decay, which is L2 (added to the gradient)."""
    return weight_decay(problem, state)


def rmsprop_threshold(state: OptimizerState, lr: float | None = None
                      ) -> tuple[float, float, float]:
    """((2 + 2μ)/lr_ref, lr_ref, μ) for the preconditioned sharpness; μ the smallest momentum
    over the groups (the lowest threshold), lr_ref ``lr`` or the largest group rate."""
    _check(state)
    lr_ref = state.lr if lr is None else lr
    if not lr_ref > 0:
        raise InputError(f"RMSprop's stability threshold needs a learning rate > 0 (the "
                         f"state's is {lr_ref:g}): pass `lr`")
    mu = min(h.momentum for h in state.hyper.values())
    return (2 + 2 * mu) / lr_ref, lr_ref, mu
