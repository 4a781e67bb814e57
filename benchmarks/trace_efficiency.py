"""How many matvecs XTrace and Hutch++ need to reach Hutchinson's error (issue 4's target).

On dense symmetric operators (cheap products): a synthetic spectrum dominated by a few large
eigenvalues, and the exact Hessian of workload 1. For each method and budget, the RMS relative
error over ``seeds`` runs; Hutchinson's error at ``hutch_budget`` matvecs is the goal, and the
smallest budget at which XTrace / Hutch++ reach it (log-log interpolation between budgets)
gives the ratio hutch_budget / that budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from landscape.linalg.operator import DenseOperator
from landscape.linalg.trace import hutchinson, hutchpp, xtrace

BUDGETS = (6, 12, 24, 48, 96, 192, 384)


@dataclass
class Efficiency:
    """RMS relative errors per method and budget, and the matvec ratios."""

    name: str
    errors: dict[str, list[float]]
    hutch_budget: int
    ratios: dict[str, float]  # method -> hutch_budget / budget needed (inf: at the smallest)
    target: bool = True  # a spectrum dominated by a few large eigenvalues (issue 4's setting)


def planted(P: int = 500, top: int = 5, seed: int = 0) -> np.ndarray:
    """A symmetric matrix with ``top`` eigenvalues 100, 80, ... and a bulk in [0, 0.2]."""
    rng = np.random.default_rng(seed)
    ev = np.concatenate([100.0 * 0.8 ** np.arange(top), rng.uniform(0, 0.2, P - top)])
    Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
    return (Q * ev) @ Q.T


def _run(method: str, op: DenseOperator, m: int, seed: int) -> float:
    if method == "hutchinson":
        return hutchinson(op, probes=m, block=m, seed=seed).estimate
    if method == "hutchpp":
        return hutchpp(op, matvecs=max(m, 6), seed=seed).estimate
    return xtrace(op, matvecs=m, seed=seed).estimate


def study(name: str, matrix: np.ndarray, seeds: int = 30, hutch_budget: int = 384,
          target: bool = True) -> Efficiency:
    """Errors and ratios for one matrix (see module doc)."""
    op = DenseOperator(torch.as_tensor(matrix, dtype=torch.float64), symmetrize=True)
    exact = float(np.trace(matrix))
    errors: dict[str, list[float]] = {}
    for method in ("hutchinson", "hutchpp", "xtrace"):
        errors[method] = []
        for m in BUDGETS:
            est = np.array([_run(method, op, m, s) for s in range(seeds)])
            errors[method].append(float(np.sqrt(np.mean((est - exact) ** 2)) / abs(exact)))
    goal = float(np.interp(np.log(hutch_budget), np.log(BUDGETS), errors["hutchinson"]))
    ratios = {}
    for method in ("hutchpp", "xtrace"):
        needed = _budget_for(errors[method], goal)
        ratios[method] = hutch_budget / needed if needed else float("nan")
    return Efficiency(name, errors, hutch_budget, ratios, target)


def _budget_for(errs: list[float], goal: float) -> float | None:
    """Smallest budget with error <= goal, interpolated in log-log; None if never reached."""
    logb, loge = np.log(BUDGETS), np.log(np.maximum(errs, 1e-300))
    if errs[0] <= goal:
        return float(BUDGETS[0])
    for i in range(1, len(BUDGETS)):
        if errs[i] <= goal:
            t = (np.log(goal) - loge[i - 1]) / (loge[i] - loge[i - 1])
            return float(np.exp(logb[i - 1] + t * (logb[i] - logb[i - 1])))
    return None
