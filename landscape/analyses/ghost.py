"""``ghost``: the ghost-of-softmax radius along a unit direction v (Sao, "Ghosts of Softmax:
Complex Singularities That Limit Safe Step Sizes in Cross-Entropy").

With logits linearised along v, z_k(θ + τv) ≈ z_k + τ a_k, a_k = ∇z_k·v (one Jacobian-vector
product per batch). The partition function Σ_k exp(z_k + τ a_k) has no zero with |Im τ|·Δ_a < π,
Δ_a = max_k a_k − min_k a_k (all phases then lie in an arc shorter than π), so the loss's Taylor
series along v converges for |τ| < ρ_a = π / max_x Δ_a(x): a bound. For two classes the nearest
zero is exactly at |τ| = sqrt(δ² + π²)/|a_1 − a_2|, δ the logit gap: ρ* is the minimum over
samples. The top-2 refinement applies that formula to each sample's two largest logits (an
estimate, not a bound); ``quantile`` replaces the max by a quantile of Δ_a (not a bound either).
A step τ has r = τ/ρ_a (r < 1: inside the radius); the Hessian's own step is τ_H = 2/(vᵀHv).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.func import jvp

from .. import distributed
from ..compat import math_attention
from ..curvature import _is_missing_rule, make_operator
from ..errors import InputError
from ..problem import Problem, ProgressFn
from ..results import Result
from .directions import unit
from .sharpness import loss_or_nan


@dataclass
class Slopes:
    """Per-sample logits z (n, C) and directional slopes a = J v (n, C), float64 on the CPU."""

    logits: np.ndarray
    slopes: np.ndarray


def _reverse_jvp(problem: Problem, theta: Tensor, v: Tensor, xb: Tensor) -> tuple[Tensor, Tensor]:
    """(z, J v) by reverse mode twice: Jᵀu is linear in u, so J v = ∇_u ⟨Jᵀu, v⟩ at u = 0."""
    leaf = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        z = problem.forward(leaf, xb)
        u = torch.zeros_like(z, requires_grad=True)
        (jtu,) = torch.autograd.grad(z, leaf, u, create_graph=True)
        if not jtu.requires_grad:  # z does not depend on θ
            return z.detach(), torch.zeros_like(z)
        (jv,) = torch.autograd.grad(jtu, u, v)
    return z.detach(), jv


def logit_slopes(problem: Problem, v: Tensor, progress: ProgressFn | None = None) -> Slopes:
    """z and a = ∇z·v for every sample (every position of a (B, T, V) output), one JVP a batch.

    Forward mode first; where an op has no forward-mode rule (SDPA's fused kernels, the
    multi-head-attention fast path on the CPU) the product is taken by reverse mode twice with
    the math attention kernel, as the curvature operator does. Under torch.distributed each
    rank takes its own batches and the per-sample rows are gathered in stream order."""
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    theta = problem.theta
    v = v.to(theta)
    total = problem.n_batches
    reverse = False
    for i, (b, _, xb, _) in enumerate(problem.iter_indexed()):
        if not reverse:
            try:
                z, a = jvp(lambda th, xb=xb: problem.forward(th, xb), (theta,), (v,))
            except (NotImplementedError, RuntimeError) as e:
                if not _is_missing_rule(e):
                    raise
                reverse = True
        if reverse:
            with math_attention():
                z, a = _reverse_jvp(problem, theta, v, xb)
        c = z.shape[-1]
        zn, an = (t.reshape(-1, c).double().cpu().numpy() for t in (z, a))
        parts.append((b, zn, an))
        if progress is not None:
            progress(i + 1, total)
    parts = sorted((p for shard in distributed.gather(parts) for p in shard), key=lambda p: p[0])
    return Slopes(np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))


def top2_radius(logits: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """sqrt(δ² + π²)/|a_1 − a_2| per sample over its two largest logits (inf where a_1 = a_2)."""
    order = np.argsort(-logits, axis=1)[:, :2]
    z = np.take_along_axis(logits, order, 1)
    a = np.take_along_axis(slopes, order, 1)
    gap = z[:, 0] - z[:, 1]
    da = np.abs(a[:, 0] - a[:, 1])
    with np.errstate(divide="ignore"):
        return np.where(da > 0, np.sqrt(gap**2 + math.pi**2) / np.where(da > 0, da, 1), np.inf)


def _radius(spread: float) -> float:
    return math.pi / spread if spread > 0 else math.inf


@dataclass
class GhostResult(Result):
    direction: str
    rho_a: float
    spread: np.ndarray
    critical_sample: int
    rho_top2: float
    rho_exact: float | None
    quantile: float | None
    rho_quantile: float | None
    vhv: float
    tau_hessian: float
    tau: float | None
    step_source: str
    loss: float
    slope: float
    curve_tau: np.ndarray
    curve_loss: np.ndarray
    n_classes: int
    matvecs: int = 1

    command: ClassVar[str] = "ghost"
    descriptions: ClassVar[dict[str, str]] = {
        "ghost/rho_a": "pi / max_x spread(x): lower bound on the Taylor radius along v",
        "ghost/spread": "per-sample max_k a_k - min_k a_k, a = (dz/dtheta) v",
        "ghost/rho_exact": "two classes: min_x sqrt(gap^2 + pi^2)/|a_1 - a_2|, the exact radius",
        "ghost/rho_top2": "min_x sqrt(gap^2 + pi^2)/|a_1 - a_2| over each sample's top-2 logits "
        "(an estimate, not a bound)",
        "ghost/rho_quantile": "pi / quantile of the spread: NOT a bound",
        "ghost/tau": "length of the step along v",
        "ghost/r": "tau / rho_a; r < 1 is inside the radius",
        "ghost/tau_hessian": "2 / (v^T H v), the step where the quadratic model stops descending",
        "ghost/curve/tau": "distances along v",
        "ghost/curve/loss": "L(theta + tau v)",
        "ghost/max_spread": "max_x spread(x), the spread of the critical sample",
        "ghost/critical_sample": "index of the sample with the largest spread",
        "ghost/quantile": "quantile of the spread used for rho_quantile",
        "ghost/vhv": "v^T H v, the curvature along the unit direction v",
        "ghost/loss": "whole-data-set mean loss at theta",
        "ghost/slope": "g^T v, the directional derivative of the loss along v",
        "ghost/n_classes": "logits per sample (classes C)",
    }

    @property
    def max_spread(self) -> float:
        return float(np.max(self.spread))

    @property
    def r(self) -> float | None:
        """τ/ρ_a, the step normalised by the radius (None without a step length)."""
        return None if self.tau is None else self.tau / self.rho_a

    @property
    def verdict(self) -> str | None:
        r = self.r
        return None if r is None else "inside the radius (r < 1)" if r < 1 else "outside (r >= 1)"

    def tree(self) -> dict[str, Any]:
        g: dict[str, Any] = {
            "attrs": {"direction": self.direction, "step_source": self.step_source},
            "rho_a": self.rho_a,
            "spread": self.spread,
            "max_spread": self.max_spread,
            "critical_sample": self.critical_sample,
            "rho_top2": self.rho_top2,
            "rho_exact": self.rho_exact,
            "vhv": self.vhv,
            "tau_hessian": self.tau_hessian,
            "loss": self.loss,
            "slope": self.slope,
            "n_classes": self.n_classes,
            "curve": {"tau": self.curve_tau, "loss": self.curve_loss},
        }
        if self.quantile is not None:
            g["quantile"] = self.quantile
            g["rho_quantile"] = self.rho_quantile
            g["attrs"]["rho_quantile_note"] = "not a bound: pi over a quantile of the spread"
        if self.tau is not None:
            g.update(tau=self.tau, r=self.r)
            g["attrs"]["verdict"] = self.verdict
        return {"ghost": g}


def ghost(
    problem: Problem,
    direction: Tensor,
    label: str = "gradient",
    tau: float | None = None,
    step_source: str = "",
    quantile: float | None = None,
    n_curve: int = 41,
    span: float = 3.0,
    progress: ProgressFn | None = None,
) -> GhostResult:
    """The ghost radius of ``problem`` at θ along ``direction`` (normalised to unit length).

    ``tau`` is the step's length along it (gives r); the loss curve runs over τ ∈ [0, span·ρ_a],
    stretched to show τ_H and τ when they lie within 10 ρ_a.
    """
    if not problem.is_classification:
        raise InputError(
            f"ghost needs a cross-entropy classifier (logits); the loss is {problem.loss_name!r}"
        )
    if quantile is not None and not 0.0 < quantile <= 1.0:
        raise InputError(f"`quantile` must be in (0, 1], got {quantile}")
    if tau is not None and not (math.isfinite(tau) and tau >= 0):
        raise InputError(f"the step length must be a finite non-negative number, got {tau}")
    v = unit(direction.to(problem.theta), label)
    s = logit_slopes(problem, v, progress)
    spread = s.slopes.max(1) - s.slopes.min(1)
    worst = int(np.argmax(spread))
    rho_a = _radius(float(spread[worst]))
    c = s.logits.shape[1]
    rho_top2 = float(np.min(top2_radius(s.logits, s.slopes))) if c >= 2 else math.inf
    rho_exact = rho_top2 if c == 2 else None  # with two classes the top-2 radius is exact
    rho_q = _radius(float(np.quantile(spread, quantile))) if quantile is not None else None

    op = make_operator(problem, "hessian")
    vhv = float(v @ op(v))
    tau_h = 2.0 / vhv if vhv > 0 else math.inf
    loss, g = problem.loss_and_grad()
    reach = [x for x in (tau_h, tau) if x is not None and math.isfinite(x) and x > 0]
    base = rho_a if math.isfinite(rho_a) else max(reach, default=1.0)
    top = max([span * base] + [1.2 * x for x in reach if x <= 10 * base])
    grid = np.linspace(0.0, top, n_curve)
    curve = np.array([loss_or_nan(problem, problem.theta + float(t) * v) for t in grid])
    return GhostResult(
        direction=label,
        rho_a=rho_a,
        spread=spread,
        critical_sample=worst,
        rho_top2=rho_top2,
        rho_exact=rho_exact,
        quantile=quantile,
        rho_quantile=rho_q,
        vhv=vhv,
        tau_hessian=tau_h,
        tau=tau,
        step_source=step_source,
        loss=loss,
        slope=float(g @ v),
        curve_tau=grid,
        curve_loss=curve,
        n_classes=c,
        matvecs=op.matvecs,
    )
