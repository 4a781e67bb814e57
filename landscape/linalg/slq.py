"""Stochastic Lanczos quadrature (SLQ): the spectral density of a symmetric operator.

For a unit start vector v, m Lanczos steps give T_m = S diag(theta) S^T, and
v^T f(A) v ~= sum_j w_j f(theta_j) with w_j = S_{0j}^2: Gauss quadrature for the spectral
measure of A seen from v (Golub & Meurant 2010). Averaging over random v estimates the
eigenvalue distribution (1/P) sum_i delta(lambda_i) (Ubaru, Chen, Saad 2017; Lin, Saad,
Yang 2016; Ghorbani, Krishnan, Xiao 2019). The independent runs advance together: each
step applies the operator once to the (runs, P) block of current vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from landscape import memplan
from landscape.errors import NumericalError
from landscape.linalg.basis import gpu_room
from landscape.linalg.operator import SymmetricOperator

__all__ = ["SLQResult", "slq", "density"]

Progress = Callable[[int, "int | None"], None]


@dataclass
class SLQResult:
    """Quadrature nodes and weights per run (runs, m), zero-padded (weight 0) when a run
    stopped early; ``trace_estimate`` = P * mean_r sum_j w_rj theta_rj, ``trace_stderr`` =
    P * std_r(sum_j w_rj theta_rj) / sqrt(runs)."""

    nodes: np.ndarray
    weights: np.ndarray
    matvecs: int
    trace_estimate: float
    trace_stderr: float
    steps: np.ndarray  # Lanczos steps each run took (runs,)


def slq(
    op: SymmetricOperator,
    runs: int = 10,
    steps: int = 100,
    seed: int = 0,
    progress: Progress | None = None,
    group: int | None = None,
    basis_on_host: bool | None = None,
) -> SLQResult:
    """``runs`` Lanczos recurrences of up to ``steps`` steps from normalised Rademacher
    vectors (CPU generator seeded with ``seed``), fully reorthogonalised (twice) within
    each run. A run whose Krylov space is exhausted (beta ~ 0, e.g. when steps > P) stops
    there; its quadrature is then exact. ``progress(matvecs, runs * steps)`` after each step.

    Runs advance ``group`` at a time (default: as many as fit, with their (steps, P) bases, in
    half the free GPU memory, or on the CPU in its free memory); a basis that alone does not
    fit lives on the host (``basis_on_host``). The start vectors are drawn up front, so the grouping
    never changes the answer.
    """
    if runs < 1 or steps < 1:
        raise ValueError("runs and steps must be >= 1")
    P, dtype, device = int(op.size), op.dtype, torch.device(op.device)
    m_max = min(int(steps), P)
    gen = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, (runs, P), generator=gen, dtype=torch.int8)  # 1 byte an entry
    auto_group, auto_host = _plan(op, runs, m_max)
    group = max(1, min(runs, group or auto_group))
    host = auto_host if basis_on_host is None else basis_on_host

    alphas = np.zeros((runs, m_max))
    betas = np.zeros((runs, m_max))
    length = np.zeros(runs, dtype=np.int64)
    matvecs = 0
    for first in range(0, runs, group):
        rows = slice(first, min(first + group, runs))
        v = ((2 * signs[rows].to(torch.float64) - 1) / math.sqrt(P)).to(device=device, dtype=dtype)
        tick = None if progress is None else (
            lambda n, total, done=matvecs: progress(done + n, runs * m_max))
        a, b, n, spent = _recurrences(op, v, m_max, host, tick)
        alphas[rows], betas[rows], length[rows] = a, b, n
        matvecs += spent

    nodes = np.zeros((runs, m_max))
    weights = np.zeros((runs, m_max))
    for r in range(runs):
        n = int(length[r])
        theta, S = eigh_tridiagonal(alphas[r, :n], betas[r, : n - 1])
        nodes[r, :n] = theta
        weights[r, :n] = S[0] ** 2
    # Each run's weights sum to ||v||^2 = 1, so sum_j w theta = v^T A v (Gauss is exact
    # for degree 1): P times it is a Hutchinson sample of tr(A).
    per_run = P * np.sum(weights * nodes, axis=1)
    stderr = float(np.std(per_run, ddof=1) / math.sqrt(runs)) if runs > 1 else float("inf")
    return SLQResult(
        nodes=nodes, weights=weights, matvecs=matvecs,
        trace_estimate=float(np.mean(per_run)), trace_stderr=stderr, steps=length,
    )


def _plan(op: SymmetricOperator, runs: int, m_max: int) -> tuple[int, bool]:
    """(runs per group, basis on host) so the bases take at most half the free GPU memory, or
    on the CPU ``memplan.SHARE`` of the free host memory with the product's vectors."""
    if torch.device(op.device).type != "cuda":
        fits = memplan.rows_that_fit(int(op.size), op.dtype, "cpu",
                                     m_max + memplan.PRODUCT_VECTORS)
        return max(1, min(fits, runs)), False
    per_run = m_max * int(op.size) * torch.finfo(op.dtype).bits // 8
    fits = int(gpu_room(op.device) // max(per_run, 1))
    return (max(fits, 1), fits == 0)


def _recurrences(
    op: SymmetricOperator, v: torch.Tensor, m_max: int, host: bool, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Lanczos on the (g, P) block of unit start vectors ``v``: alphas, betas (g, m_max),
    steps taken (g,) and matvecs spent."""
    g, P = v.shape
    dtype, device = v.dtype, v.device
    bdev = torch.device("cpu") if host else device
    eps = torch.finfo(dtype).eps
    basis = torch.zeros((g, m_max, P), dtype=dtype, device=bdev)
    alphas, betas = np.zeros((g, m_max)), np.zeros((g, m_max))
    length = np.zeros(g, dtype=np.int64)
    anorm = np.zeros(g)
    active = torch.ones(g, dtype=torch.bool)
    matvecs = 0
    for j in range(m_max):
        rows = torch.nonzero(active).flatten()
        r_np = rows.numpy()
        basis[:, j] = v.to(bdev)
        if rows.numel() == g:
            w = op(v).to(dtype)
        else:
            w = torch.zeros((g, P), dtype=dtype, device=device)
            w[rows.to(device)] = op(v[rows.to(device)]).to(dtype)
        matvecs += int(rows.numel())
        w = w.to(bdev)
        V = basis[:, : j + 1]  # (g, j+1, P); finished runs hold zeros from here on
        h = torch.bmm(V, w[:, :, None])  # (g, j+1, 1): CGS, then once more
        w = w - torch.bmm(h.transpose(1, 2), V)[:, 0]
        h2 = torch.bmm(V, w[:, :, None])
        w = (w - torch.bmm(h2.transpose(1, 2), V)[:, 0]).to(device)
        h, h2 = h[:, :, 0], h2[:, :, 0]
        a = (h + h2)[:, j].double().cpu().numpy()
        b = w.norm(dim=1).double().cpu().numpy()
        if not (np.all(np.isfinite(a[r_np])) and np.all(np.isfinite(b[r_np]))):
            raise NumericalError(f"non-finite value in SLQ step {j + 1} (operator gave NaN/Inf)")
        alphas[r_np, j] = a[r_np]
        betas[r_np, j] = b[r_np]
        length[r_np] = j + 1
        prev = betas[r_np, j - 1] if j > 0 else 0.0
        anorm[r_np] = np.maximum(anorm[r_np], np.abs(a[r_np]) + b[r_np] + prev)
        done = b <= 100 * eps * anorm
        active &= torch.from_numpy(~done)
        if progress is not None:
            progress(matvecs, None)
        if not bool(active.any()) or j + 1 == m_max:
            break
        scale = torch.from_numpy(np.where(done, 1.0, b)).to(device=device, dtype=dtype)
        v = torch.where(active.to(device)[:, None], w / scale[:, None], torch.zeros_like(w))
    return alphas, betas, length, matvecs


def density(
    nodes: np.ndarray,
    weights: np.ndarray,
    sigma: float | None = None,
    grid: np.ndarray | None = None,
    n_grid: int = 1000,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-smoothed spectral density phi(x) = mean_r sum_j w_rj N(x; theta_rj, sigma^2).

    Default ``sigma`` = (max node - min node) / 100 (nodes with weight > 0 only), the grid
    spans [min node - 3 sigma, max node + 3 sigma] with ``n_grid`` points, and the values
    are normalised to integrate to 1 on the grid (trapezoid rule). Returns (grid, values,
    sigma).
    """
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    keep = weights > 0
    x, w = nodes[keep], weights[keep] / nodes.shape[0]
    if x.size == 0:
        raise ValueError("density needs at least one node with positive weight")
    lo, hi = float(x.min()), float(x.max())
    if sigma is None:
        span = hi - lo
        sigma = span / 100 if span > 0 else max(abs(hi), 1.0) * 1e-3
    sigma = float(sigma)
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    if grid is None:
        grid = np.linspace(lo - 3 * sigma, hi + 3 * sigma, int(n_grid))
    grid = np.asarray(grid, dtype=np.float64)
    values = np.zeros_like(grid)
    norm = 1.0 / (sigma * math.sqrt(2 * math.pi))
    for start in range(0, x.size, 256):  # bounded memory: (G, 256) at a time
        xs, ws = x[start:start + 256], w[start:start + 256]
        values += (np.exp(-0.5 * ((grid[:, None] - xs[None]) / sigma) ** 2) * ws).sum(1) * norm
    total = float(np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2)
    if total > 0:
        values = values / total
    return grid, values, sigma
