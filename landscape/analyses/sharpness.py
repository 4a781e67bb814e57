"""``sharpness``: λ_max, the edge-of-stability ratios and directional sharpness.

- λ_max of the curvature C (Lanczos); gradient descent with step lr and heavy-ball momentum β is
  stable on a quadratic only while λ_max < (2 + 2β)/lr (Cohen et al. 2021, "Gradient Descent on
  Neural Networks Typically Occurs at the Edge of Stability"): ``eos_ratio`` = lr·λ_max/(2 + 2β).
- Adam: the preconditioned sharpness λ_max(P^-1/2 C P^-1/2) against (2 + 2β1)/((1 − β1)·lr),
  38/lr for β1 = 0.9 (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability").
  With param groups of different learning rates, each group's lr_i is folded into P as
  P·lr_ref/lr_i (lr_ref the largest), so the step is −lr_ref·P⁻¹m and one threshold applies;
  with different β1 the smallest (lowest threshold, largest ratio) is used. Parameters the
  optimizer does not cover are left out (P⁻¹ = 0): they do not move. RMSprop's is the same on
  its own P, against (2 + 2μ)/lr (``preconditioned``, ``rmsprop_step``).
- Directional sharpness S(u) = uᵀCu/‖u‖² (Pan and Li 2023, "Toward Understanding Why Adam
  Converges Faster Than SGD for Transformers") along the gradient, the update, the top
  eigenvector, random directions, a file; the cosine of ∇L with the top-k eigenspace ‖V_kᵀg‖/‖g‖.
- The quadratic model f(θ + t·u) ≈ f + t·gᵀu + t²/2·uᵀCu beside the true loss, t ∈ [0, 2].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..curvature import make_operator
from ..errors import NumericalError
from ..linalg.lanczos import lanczos
from ..loading.optimizer import OptimizerState
from ..problem import Problem, ProgressFn
from ..results import Result
from . import directions as dirs
from .preconditioned import Preconditioned, preconditioned  # noqa: F401 (public here too)

STEPS = np.linspace(0.0, 2.0, 21)


@dataclass
class SharpnessResult(Result):
    lambda_max: float
    eigenvalues: np.ndarray
    residuals: np.ndarray
    directional: dict[str, float]
    random: np.ndarray
    grad_cosines: np.ndarray
    loss: float
    grad_norm: float
    curvature: str = "hessian"
    lr: float | None = None
    momentum: float = 0.0
    rate_source: str = ""  # 'given' (lr passed) or 'sgd state' (the checkpoint's own)
    preconditioned: dict[str, float] | None = None
    update_source: str = ""
    steps: np.ndarray = field(default_factory=lambda: STEPS.copy())
    true_loss: np.ndarray | None = None
    model_loss: np.ndarray | None = None
    matvecs: int = 0

    command: ClassVar[str] = "sharpness"
    descriptions: ClassVar[dict[str, str]] = {
        "sharpness/lambda_max": "largest eigenvalue of the curvature (Lanczos)",
        "sharpness/eigenvalues": "top-k eigenvalues, descending",
        "sharpness/residuals": "relative residual bounds of the top-k Ritz pairs",
        "sharpness/eos_ratio": "lr*lambda_max/(2+2*momentum); >= 1 is past the edge of stability",
        "sharpness/threshold": "(2+2*momentum)/lr, the largest stable lambda_max",
        "sharpness/grad_cosines": "|cos| of the gradient with each top eigenvector",
        "sharpness/grad_cosine_topk": "||V_k^T g||/||g||, cosine with the top-k eigenspace",
        "sharpness/directional/random": "u^T C u/||u||^2 for each seeded Gaussian direction",
        "sharpness/directional/random_mean": "mean of directional/random over the directions",
        "sharpness/directional/random_std": "standard deviation of directional/random across "
        "the directions (their spread, ddof=0; not an error bar of the mean)",
        "sharpness/directional/gradient": "g^T C g/||g||^2 along the gradient g",
        "sharpness/directional/top_eigenvector": "v^T C v along the top eigenvector "
        "(= lambda_max up to the residual)",
        "sharpness/directional/update": "u^T C u/||u||^2 along the training update (attr "
        "update_source)",
        "sharpness/directional/file": "u^T C u/||u||^2 along the direction read from a file",
        "sharpness/loss": "whole-data-set mean loss at theta",
        "sharpness/grad_norm": "2-norm of the whole-data-set gradient g",
        "sharpness/lr": "learning rate of the edge-of-stability threshold",
        "sharpness/momentum": "heavy-ball momentum beta of the threshold (2+2*beta)/lr",
        "sharpness/quadratic/steps": "t, multiples of the update",
        "sharpness/quadratic/true_loss": "L(theta + t u)",
        "sharpness/quadratic/model_loss": "L + t g.u + t^2/2 u^T C u",
        "sharpness/preconditioned/lambda_max": "lambda_max(P^-1/2 (C + wd I) P^-1/2), Adam's P",
        "sharpness/preconditioned/threshold": "(2+2*beta1)/((1-beta1)*lr)",
        "sharpness/preconditioned/ratio": "preconditioned lambda_max / threshold; >= 1 is past "
        "Adam's edge of stability",
        "sharpness/preconditioned/lr": "Adam's learning rate used (--lr, else the state's)",
        "sharpness/preconditioned/beta1": "Adam's beta1 from the optimizer state",
        "sharpness/preconditioned/momentum": "RMSprop's momentum: threshold (2+2*momentum)/lr",
        "sharpness/preconditioned/step": "Adam's step count from the optimizer state",
    }

    @property
    def grad_cosine_topk(self) -> float:
        """||V_k^T g|| / ||g||: the gradient's cosine with the top-k eigenspace."""
        return float(np.sqrt(np.sum(self.grad_cosines**2)))

    @property
    def threshold(self) -> float | None:
        """(2 + 2β)/lr, the largest λ_max heavy-ball GD with this lr is stable at (None without
        lr; Cohen et al. 2021)."""
        return None if self.lr is None else (2 + 2 * self.momentum) / self.lr

    @property
    def eos_ratio(self) -> float | None:
        """λ_max / threshold = lr·λ_max/(2 + 2β); 1 or more is past the edge of stability."""
        t = self.threshold
        return None if t is None else self.lambda_max / t

    def tree(self) -> dict[str, Any]:
        g: dict[str, Any] = {
            "attrs": {"curvature": self.curvature, "update_source": self.update_source},
            "lambda_max": self.lambda_max,
            "eigenvalues": self.eigenvalues,
            "residuals": self.residuals,
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "grad_cosines": self.grad_cosines,
            "grad_cosine_topk": self.grad_cosine_topk,
            "momentum": self.momentum,
            "directional": dict(self.directional),
        }
        if len(self.random):
            g["directional"]["random"] = self.random
            g["directional"]["random_mean"] = float(np.mean(self.random))
            g["directional"]["random_std"] = float(np.std(self.random))
        if self.lr is not None:
            g.update(lr=self.lr, threshold=self.threshold, eos_ratio=self.eos_ratio)
            g["attrs"]["rate_source"] = self.rate_source
        if self.preconditioned is not None:
            g["preconditioned"] = dict(self.preconditioned)
        if self.true_loss is not None:
            g["quadratic"] = {
                "steps": self.steps,
                "true_loss": self.true_loss,
                "model_loss": self.model_loss,
            }
        return {"sharpness": g}


def loss_or_nan(problem: Problem, theta: Tensor) -> float:
    """L(θ), or NaN where the loss is not finite (far along a step)."""
    try:
        return problem.loss(theta)
    except NumericalError:
        return float("nan")


def _rayleigh(op: Any, U: Tensor) -> np.ndarray:
    """uᵀCu/‖u‖² for every row of U, in one block product."""
    norms = U.norm(dim=1, keepdim=True)
    V = U / norms
    return (V * op(V)).sum(1).double().cpu().numpy()


def sharpness(
    problem: Problem,
    curvature: str = "hessian",
    top_k: int = 5,
    n_random: int = 10,
    seed: int = 0,
    lr: float | None = None,
    momentum: float | None = None,
    adam: OptimizerState | None = None,
    update: dirs.Update | None = None,
    file_direction: Tensor | None = None,
    tol: float = 1e-6,
    max_steps: int | None = None,
    steps: np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> SharpnessResult:
    """Every sharpness measure of ``problem`` at θ (see the module docstring).

    ``update`` is the step training takes (``directions.resolve_update``); without one the
    quadratic model runs along −g scaled to the model's own minimiser t* = ‖g‖²/gᵀCg.
    ``adam`` (an Adam ``OptimizerState``) adds the preconditioned sharpness (its groups' lrs
    unless ``lr`` is given; see the module docstring for several groups). Without ``lr``, an
    SGD state gives the rate and β of its next step (its largest lr, its smallest momentum,
    unless ``momentum`` is given); ``momentum`` is 0 otherwise.
    """
    rate_source = "" if lr is None else "given"
    if lr is None and adam is not None and adam.kind == "sgd" and adam.lr > 0:
        lr, rate_source = adam.lr, "sgd state"
        if momentum is None:
            momentum = min(h.momentum for h in adam.hyper.values())
    momentum = momentum or 0.0
    op = make_operator(problem, curvature, seed=seed)
    loss, g = problem.loss_and_grad()
    eig = lanczos(
        op,
        k=min(top_k, problem.size),
        which="largest",
        tol=tol,
        max_steps=max_steps,
        seed=seed,
        return_vectors=True,
        progress=progress,
    )
    vecs = eig.eigenvectors
    named: dict[str, Tensor] = {"gradient": g, "top_eigenvector": vecs[0]}
    if update is not None:
        named["update"] = update.vector
    if file_direction is not None:
        named["file"] = file_direction
    for name, u in named.items():
        dirs.unit(u, name)  # refuse zero directions with a clear message
    rand = dirs.random_directions(problem, n_random, seed) if n_random else None
    block = torch.stack(list(named.values()) + ([] if rand is None else list(rand)))
    values = _rayleigh(op, block)
    directional = {n: float(v) for n, v in zip(named, values)}
    gnorm = float(g.norm())
    cosines = (vecs @ g).abs().double().cpu().numpy() / gnorm

    precond = None
    if adam is not None and adam.is_adaptive:
        precond = preconditioned(problem, op, adam, lr, tol, max_steps, seed + 1, progress)

    if update is not None and not update.zero:
        u, source = update.vector, update.source
        uhu = directional["update"] * float(u.norm()) ** 2
    else:
        ghg = directional["gradient"] * gnorm**2
        scale = gnorm**2 / ghg if ghg > 0 else 1.0 / gnorm
        u, source, uhu = -scale * g, "gradient line search", ghg * scale**2
    t = STEPS.copy() if steps is None else np.asarray(steps, dtype=np.float64)
    slope = float(g @ u)
    model = loss + t * slope + 0.5 * t**2 * uhu
    true = np.array([loss_or_nan(problem, problem.theta + float(ti) * u) for ti in t])
    return SharpnessResult(
        lambda_max=float(eig.eigenvalues[0]),
        eigenvalues=eig.eigenvalues,
        residuals=eig.residuals,
        directional=directional,
        random=values[len(named) :],
        grad_cosines=cosines,
        loss=loss,
        grad_norm=gnorm,
        curvature=curvature,
        lr=lr,
        momentum=momentum,
        rate_source=rate_source,
        preconditioned=precond,
        update_source=source,
        steps=t,
        true_loss=true,
        model_loss=model,
        matvecs=op.matvecs,
    )
