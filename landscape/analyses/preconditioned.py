"""The preconditioned sharpness of an adaptive optimizer: λ_max(P^-1/2 (C + wd) P^-1/2) and its
edge of stability.

With its preconditioner frozen, Adam is heavy-ball preconditioned gradient descent with an EMA of
the gradient, stable on a quadratic while that λ_max ≤ (2 + 2β1)/((1 − β1)·lr), 38/lr at
β1 = 0.9; RMSprop (with momentum μ) while it is ≤ (2 + 2μ)/lr (Cohen et al. 2022, "Adaptive
Gradient Methods at the Edge of Stability"). P is ``optimizer_step.adam_preconditioner`` or
``rmsprop_step.rmsprop_preconditioner``; L2 weight decay (Adam's, RMSprop's) is part of the
curvature, AdamW's decoupled decay is not.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ..linalg.lanczos import lanczos
from ..loading.optimizer import OptimizerState
from ..problem import Problem, ProgressFn
from . import optimizer_step as optstep
from . import rmsprop_step as rms


class Preconditioned:
    """The symmetric operator V -> (C (V ⊙ p^-1/2)) ⊙ p^-1/2 (+ wd⊙V⊙p^-1), p a positive diagonal.

    Its eigenvalues are those of P⁻¹(C + diag(wd)); ``weight_decay`` is a number or one per
    coordinate; p = ∞ drops a coordinate (a parameter the optimizer does not move).
    ``matvecs`` is the wrapped operator's count.
    """

    def __init__(self, op: Any, diag: Tensor, weight_decay: float | Tensor = 0.0) -> None:
        self.op = op
        self.scale = diag.to(device=op.device, dtype=op.dtype).rsqrt()
        if isinstance(weight_decay, Tensor):
            weight_decay = weight_decay.to(device=op.device, dtype=op.dtype)
            weight_decay = weight_decay if bool(weight_decay.any()) else 0.0
        self.weight_decay = weight_decay
        self.size, self.dtype, self.device = op.size, op.dtype, op.device

    @property
    def matvecs(self) -> int:
        return self.op.matvecs

    def __call__(self, V: Tensor) -> Tensor:
        W = V * self.scale
        out = self.op(W) * self.scale
        if isinstance(self.weight_decay, Tensor) or self.weight_decay:
            return out + self.weight_decay * W * self.scale
        return out


def preconditioned(problem: Problem, op: Any, adam: OptimizerState, lr: float | None = None,
                   tol: float = 1e-6, max_steps: int | None = None, seed: int = 1,
                   progress: ProgressFn | None = None) -> dict[str, float]:
    """Adam's or RMSprop's preconditioned sharpness λ_max(P^-1/2 (C + wd) P^-1/2) against its
    threshold (see the module docstring). At a schedule's end (every group's lr 0, no ``lr``)
    P is taken at equal rates, and the threshold is inf: ratio 0.

    Args:
        problem: the problem at θ; ``op`` its curvature operator.
        adam: the checkpoint's Adam or RMSprop state (``is_adaptive``).
        lr: overrides the groups' learning rates.
        tol, max_steps, seed, progress: as for Lanczos.

    Returns:
        lambda_max, threshold, ratio, lr, beta1 (Adam) or momentum (RMSprop) and step
        (products count on ``op``)."""
    zero = lr is None and adam.lr <= 0  # a schedule's end: P at equal rates, no threshold
    rate = 1.0 if zero else lr
    if adam.kind == "rmsprop":  # P = sqrt(v) + ε, threshold (2 + 2μ)/lr (rmsprop_step)
        diag, l2 = rms.rmsprop_preconditioner(problem, adam, rate), rms.rmsprop_l2(problem, adam)
        threshold, a_lr, beta = rms.rmsprop_threshold(adam, rate)
    else:
        diag, l2 = optstep.adam_preconditioner(problem, adam, rate), optstep.adam_l2(problem, adam)
        threshold, a_lr, beta = optstep.adam_threshold(adam, rate)
    pe = lanczos(Preconditioned(op, diag, l2), k=1, which="largest", tol=tol,
                 max_steps=max_steps, seed=seed, progress=progress)
    if zero:  # lr 0 never diverges: ratio 0
        threshold, a_lr = math.inf, 0.0
    lam = float(pe.eigenvalues[0])
    return {"lambda_max": lam, "threshold": threshold, "ratio": lam / threshold, "lr": a_lr,
            ("momentum" if adam.kind == "rmsprop" else "beta1"): beta, "step": float(adam.step)}
