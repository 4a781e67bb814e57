"""The next step of a stored optimizer, and Adam's preconditioner, as flat vectors over θ.

Every parameter uses its own param group's hyperparameters. Parameters the state does not cover
take no step and are left out of the preconditioner (P = ∞ there, P⁻¹ = 0: they do not move).
- Adam/AdamW, exactly as ``torch.optim.Adam``/``AdamW`` step (Kingma and Ba 2015; decoupled
  weight decay, Loshchilov and Hutter 2019; amsgrad's running maximum, Reddi et al. 2018);
- SGD with momentum, dampening, Nesterov and weight decay, exactly as ``torch.optim.SGD``;
- Cohen et al.'s P = (1 − β1^t)·(sqrt(v_t / (1 − β2^t)) + ε), so that Adam's step is −lr·P⁻¹m
  (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability").
RMSprop's step and preconditioner are in ``rmsprop_step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import InputError
from ..loading.optimizer import OptimizerState
from ..problem import Problem


def _per_coord(problem: Problem, state: OptimizerState, value: Callable, fill: float) -> Tensor:
    """value(name) (a tensor or a number) over each covered parameter, ``fill`` elsewhere."""
    like = problem.theta
    parts = []
    for n, k in zip(problem.names, problem.numels):
        x = value(n) if n in state.hyper else fill
        if isinstance(x, Tensor):
            parts.append(x.detach().reshape(-1).to(like))
        else:
            parts.append(torch.full((k,), float(x), dtype=like.dtype, device=like.device))
    return torch.cat(parts)


def _state_vectors(problem: Problem, state: OptimizerState) -> dict[str, Tensor]:
    """Per-coordinate moments, step and hyperparameters in θ's order (0 where not covered)."""
    h = state.hyper

    def vec(fn: Callable, fill: float = 0.0) -> Tensor:
        return _per_coord(problem, state, fn, fill)

    out = {
        "covered": vec(lambda n: 1.0),
        "m": vec(lambda n: state.exp_avg.get(n, 0.0)),
        "v": vec(lambda n: state.exp_avg_sq.get(n, 0.0)),
        "vmax": vec(lambda n: state.max_exp_avg_sq.get(n, 0.0)),
        "buf": vec(lambda n: state.momentum_buffer.get(n) if
                   isinstance(state.momentum_buffer.get(n), Tensor) else 0.0),
        "has_buf": vec(lambda n: float(isinstance(state.momentum_buffer.get(n), Tensor))),
        "t": vec(lambda n: state.steps.get(n, 0.0)),
        "lr": vec(lambda n: h[n].lr),
        "b1": vec(lambda n: h[n].betas[0], 0.9),
        "b2": vec(lambda n: h[n].betas[1], 0.999),
        "eps": vec(lambda n: h[n].eps, 1.0),
        "wd": vec(lambda n: h[n].weight_decay),
        "sign": vec(lambda n: -1.0 if h[n].maximize else 1.0, 1.0),
        "mu": vec(lambda n: h[n].momentum),
        "damp": vec(lambda n: h[n].dampening),
        "nesterov": vec(lambda n: float(h[n].nesterov)),
    }
    if state.kind == "rmsprop":  # four more θ-sized vectors only where they are used
        out.update(sq=vec(lambda n: state.square_avg.get(n, 0.0)),
                   gavg=vec(lambda n: state.grad_avg.get(n, 0.0)),
                   alpha=vec(lambda n: h[n].alpha, 0.99),
                   centered=vec(lambda n: float(h[n].centered)))
    return out


def weight_decay(problem: Problem, state: OptimizerState) -> Tensor:
    """Each covered parameter's group weight decay over θ, 0 elsewhere (one vector, not all of
    ``_state_vectors``)."""
    return _per_coord(problem, state, lambda n: state.hyper[n].weight_decay, 0.0)


def adam_update(
    problem: Problem, state: OptimizerState, grad: Tensor, lr: float | None = None
) -> Tensor:
    """θ_{t+1} − θ_t of one more Adam(W) step from ``state`` with the gradient ``grad``.

    g' = g + wd·θ (Adam, L2); m' = β1 m + (1−β1) g'; v' = β2 v + (1−β2) g'²; t' = t + 1;
    v̄ = max(v_max, v') with amsgrad, else v'; Δθ = −lr/(1−β1^t') · m' / (sqrt(v̄/(1−β2^t')) + ε),
    minus lr·wd·θ for AdamW. Each parameter uses its group's lr, wd, β and ε; ``lr`` overrides
    every group's learning rate. Parameters without state take no step.
    """
    if not state.is_adam:
        raise InputError(f"the optimizer state is {state.kind}'s, not Adam's")
    s = _state_vectors(problem, state)
    theta = problem.theta
    lr_v = s["lr"] if lr is None else s["covered"] * lr
    b1, b2 = s["b1"], s["b2"]
    g = grad.to(theta) * s["sign"]
    decoupled = state.kind == "adamw"
    if not decoupled:
        g = g + s["wd"] * theta
    m = b1 * s["m"] + (1 - b1) * g
    v = b2 * s["v"] + (1 - b2) * g * g
    t = s["t"] + 1
    v_bar = torch.maximum(s["vmax"], v)  # vmax is 0 without amsgrad
    step = -(lr_v / (1 - b1**t)) * m / (v_bar.sqrt() / (1 - b2**t).sqrt() + s["eps"])
    if decoupled:
        step = step - lr_v * s["wd"] * theta
    return step * s["covered"]


def sgd_update(
    problem: Problem, state: OptimizerState, grad: Tensor, lr: float | None = None
) -> Tensor:
    """θ_{t+1} − θ_t of one more ``torch.optim.SGD`` step from its momentum buffers.

    d = g + wd·θ; b' = μ b + (1 − dampening) d (b' = d where no buffer was kept yet);
    d' = d + μ b' (Nesterov) or b' (μ > 0), d (μ = 0); Δθ = −lr·d'. Per group; ``lr`` overrides.
    """
    s = _state_vectors(problem, state)
    theta = problem.theta
    lr_v = s["lr"] if lr is None else s["covered"] * lr
    d = grad.to(theta) * s["sign"] + s["wd"] * theta
    mu = s["mu"]
    b = torch.where(s["has_buf"] > 0, mu * s["buf"] + (1 - s["damp"]) * d, d)
    d_next = torch.where(mu > 0, torch.where(s["nesterov"] > 0, d + mu * b, b), d)
    return -lr_v * d_next * s["covered"]


def adam_preconditioner(
    problem: Problem, state: OptimizerState, lr: float | None = None
) -> Tensor:
    """Cohen et al.'s diagonal P = (1 − β1^t)·(sqrt(v̄_t / (1 − β2^t)) + ε) at the stored step t,
    v̄ = max_exp_avg_sq with amsgrad. Where groups' learning rates differ (and ``lr`` does not
    override them) P is scaled by lr_ref/lr_i, lr_ref the largest, so that every step is
    −lr_ref·P⁻¹m; uncovered parameters get P = ∞."""
    s = _state_vectors(problem, state)
    t = s["t"].clamp(min=1)
    b1, b2 = s["b1"], s["b2"]
    v_bar = torch.maximum(s["vmax"], s["v"])
    p = (1 - b1**t) * ((v_bar / (1 - b2**t)).sqrt() + s["eps"])
    if lr is None:
        p = p * (state.lr / s["lr"])  # a group with lr 0 does not move: P = ∞
    return torch.where(s["covered"] > 0, p, torch.full_like(p, math.inf))


def adam_l2(problem: Problem, state: OptimizerState) -> Tensor:
    """Adam's per-coordinate L2 weight decay (part of the gradient); 0 for AdamW and elsewhere."""
    wd = weight_decay(problem, state)
    return wd if state.kind == "adam" else torch.zeros_like(wd)


def adam_threshold(state: OptimizerState, lr: float | None = None) -> tuple[float, float, float]:
    """(threshold (2 + 2β1)/((1 − β1)·lr_ref), lr_ref, β1) for the preconditioned sharpness.

    lr_ref is ``lr`` or the largest group learning rate (``adam_preconditioner`` folds the
    others into P); β1 is the smallest over the groups, whose threshold is the lowest: with
    groups of different β1 the ratio is the conservative (largest) one.
    """
    lr_ref = state.lr if lr is None else lr
    if not lr_ref > 0:
        raise InputError(f"Adam's stability threshold needs a learning rate > 0 (the state's is "
                         f"{lr_ref:g}): pass `lr`")
    b1 = min(h.betas[0] for h in state.hyper.values())
    return (2 + 2 * b1) / ((1 - b1) * lr_ref), lr_ref, b1
