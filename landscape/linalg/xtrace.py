"""XTrace (Epperly, Tropp, Webber 2023): the exchangeable Hutch++.

Each test vector w_i is the Hutchinson probe for the basis Q_(i) of A W with column i left out;
the s leave-one-out estimates t_i average to the estimate, and a jackknife over the test vectors
gives its standard error.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from landscape.linalg.operator import SymmetricOperator
from landscape.linalg.trace import (
    Progress,
    TraceResult,
    _adaptive,
    _orth_rows,
    _probes,
    _quantile,
    _result,
)


def xtrace(
    op: SymmetricOperator,
    matvecs: int = 100,
    dist: str = "rademacher",
    seed: int = 0,
    rtol: float | None = None,
    confidence: float = 0.95,
    max_matvecs: int | None = None,
    progress: Progress | None = None,
    max_run: int | None = None,
) -> TraceResult:
    """XTrace with s = matvecs // 2 test vectors W: Y = A W = Q R, Z = A Q (2s products).

    Leaving w_i out of the basis removes the direction q_i = Q r_i, r_i the normalised
    column i of R^{-T}. With H = Q^T A Q, c_i = r_i^T Q^T w_i and u_i = Q^T w_i - c_i r_i:
    t_i = tr(H) - r_i^T H r_i + w_i^T y_i - 2 R[:, i]^T u_i + u_i^T H u_i, unbiased for
    tr(A). The estimate is mean(t_i) (``samples`` = t_i); the stderr is the jackknife over
    test vectors, not the paper's std(t_i)/sqrt(s), which covers too rarely.
    Adaptive ``rtol``: re-run with doubled ``matvecs`` (:func:`_adaptive`), no run above
    ``max_run`` matvecs.
    """

    def run(m: int, gen: torch.Generator) -> TraceResult:
        s = min(max(m // 2, 2), op.size)
        W = _probes(gen, s, op, dist)
        Y = op(W)
        wy = (W * Y).sum(dim=1).double().cpu().numpy()
        Q, R = _orth_rows(Y)
        del Y  # four (s, P) blocks at the peak, not five (landscape.memplan)
        Z = op(Q)
        H = (Q @ Z.T).double().cpu().numpy()
        del Z
        H = (H + H.T) / 2
        Wq = (Q @ W.T).double().cpu().numpy()  # column i: Q^T w_i
        Rn = R.double().cpu().numpy()
        t = _xtrace_samples(H, Wq, Rn, wy)
        res = _result(t, confidence, 2 * s, "xtrace", "probes")
        res.stderr = _xtrace_jackknife(H, Wq, Rn, wy)
        half = _quantile(confidence, s) * res.stderr
        res.ci_low, res.ci_high = res.estimate - half, res.estimate + half
        return res

    return _adaptive(op, run, matvecs, seed, rtol, confidence, max_matvecs, progress, max_run)


def _xtrace_samples(H: np.ndarray, Wq: np.ndarray, R: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """The leave-one-out estimates t_i (formula in :func:`xtrace`) from the s x s
    quantities; every argument may carry leading batch dimensions."""
    try:
        X = np.swapaxes(np.linalg.inv(R), -1, -2)  # R^{-T}
    except np.linalg.LinAlgError:
        X = np.swapaxes(np.linalg.pinv(R), -1, -2)
    if not np.all(np.isfinite(X)):
        X = np.swapaxes(np.linalg.pinv(R), -1, -2)
    X = X / np.maximum(np.linalg.norm(X, axis=-2, keepdims=True), np.finfo(np.float64).tiny)
    c = np.sum(X * Wq, axis=-2, keepdims=True)
    U = Wq - X * c
    quad = "...ji,...jk,...ki->...i"
    return (
        np.trace(H, axis1=-2, axis2=-1)[..., None]
        - np.einsum(quad, X, H, X)
        + wy
        - 2 * np.sum(R * U, axis=-2)
        + np.einsum(quad, U, H, U)
    )


def _xtrace_jackknife(H: np.ndarray, Wq: np.ndarray, R: np.ndarray, wy: np.ndarray) -> float:
    """Jackknife standard error of XTrace: re-run it without test vector j (in the s x s
    coordinates of Q, no new products), se^2 = (s-1)/s sum_j (est_(j) - mean)^2. By the
    Efron-Stein inequality this over-estimates the variance on average; the spread of the
    t_i alone (the paper's estimate) runs ~20% low because the t_i are correlated."""
    s = R.shape[1]
    if s < 3:
        return math.inf
    keep = np.array([np.delete(np.arange(s), j) for j in range(s)])  # (s, s-1)
    B, Rj = np.linalg.qr(np.swapaxes(R[:, keep], 0, 1))  # batches of R[:, keep[j]]
    Bt = np.swapaxes(B, -1, -2)
    Hj = Bt @ H @ B
    Wj = Bt @ np.swapaxes(Wq[:, keep], 0, 1)
    est = _xtrace_samples(Hj, Wj, Rj, wy[keep]).mean(axis=-1)
    return float(math.sqrt((s - 1) / s * np.sum((est - est.mean()) ** 2)))
