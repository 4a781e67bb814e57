"""Randomised trace (and diagonal) estimators with honest confidence intervals.

- Hutchinson (1989): tr(A) ~= mean_i z_i^T A z_i, E[z z^T] = I (Rademacher or Gaussian z).
- Hutch++ (Meyer, Musco, Musco, Woodruff 2021): tr(A) = tr(Q^T A Q) + tr((I-QQ^T) A (I-QQ^T)),
  Q an orthonormal basis of A S for a random sketch S; the remainder by Hutchinson.
- XTrace (Epperly, Tropp, Webber 2023): exchangeable Hutch++ in which each test vector w_i
  is the Hutchinson probe for the basis Q_(i) of A W with column i left out; the spread of
  the s leave-one-out estimates gives the error estimate.
- Diagonal (Bekas, Kokiopoulou, Saad 2007): diag(A) ~= sum_i z_i * A z_i / sum_i z_i * z_i.

Every interval is estimate +- q * stderr with q the Student-t quantile for ``confidence``
on (samples - 1) degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import t as student_t

from landscape.linalg.operator import SymmetricOperator

__all__ = ["TraceResult", "hutchinson", "hutchpp", "xtrace", "hutchinson_diagonal"]

Progress = Callable[[int, "int | None"], None]
DISTS = ("rademacher", "gaussian")
DEFAULT_PROBES = 64
DEFAULT_MAX_BLOCKS = 100  # adaptive Hutchinson without max_matvecs: at most this many blocks


@dataclass
class TraceResult:
    """A trace estimate with its standard error and ``confidence`` interval. ``samples``
    are the per-probe estimates whose mean is ``estimate`` (empty where a method has
    none); ``stopped`` is "probes" (fixed budget), "rtol" (tolerance met) or
    "max_matvecs" (budget spent before the tolerance was met)."""

    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    confidence: float
    samples: np.ndarray
    matvecs: int
    method: str
    stopped: str


def _probes(gen: torch.Generator, n: int, op: SymmetricOperator, dist: str) -> torch.Tensor:
    """n probe rows from the CPU generator, moved to the op's dtype and device."""
    if dist == "rademacher":
        z = torch.randint(0, 2, (n, op.size), generator=gen, dtype=torch.int8)
        z = 2 * z.to(torch.float64) - 1
    elif dist == "gaussian":
        z = torch.randn((n, op.size), generator=gen, dtype=torch.float64)
    else:
        raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")
    return z.to(device=op.device, dtype=op.dtype)


def _quantile(confidence: float, n: int) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    return float(student_t.ppf(0.5 + confidence / 2, n - 1)) if n > 1 else math.inf


def _result(samples: np.ndarray, confidence: float, matvecs: int, method: str,
            stopped: str) -> TraceResult:
    n = samples.size
    est = float(np.mean(samples))
    se = float(np.std(samples, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    half = _quantile(confidence, n) * se
    return TraceResult(est, se, est - half, est + half, confidence, samples, matvecs, method,
                       stopped)


def _met(r: TraceResult, rtol: float) -> bool:
    return (r.ci_high - r.estimate) <= rtol * abs(r.estimate)


def hutchinson(
    op: SymmetricOperator,
    probes: int | None = None,
    dist: str = "rademacher",
    seed: int = 0,
    rtol: float | None = None,
    confidence: float = 0.95,
    max_matvecs: int | None = None,
    block: int = 32,
    progress: Progress | None = None,
) -> TraceResult:
    """Hutchinson's estimator; probes go through ``op`` in blocks of ``block`` rows.

    Without ``rtol``: ``probes`` probes (default 64, at most ``max_matvecs``). With ``rtol``:
    start with ``probes`` (default ``block``) and add blocks until the CI half-width is
    <= rtol * |estimate| ("rtol") or ``max_matvecs`` (default 100 blocks) is spent
    ("max_matvecs").
    """
    gen = torch.Generator().manual_seed(int(seed))
    if rtol is None:
        target = probes if probes is not None else DEFAULT_PROBES
        budget = min(target, max_matvecs) if max_matvecs is not None else target
        first = budget
    else:
        budget = max_matvecs if max_matvecs is not None else DEFAULT_MAX_BLOCKS * block
        first = min(probes if probes is not None else block, budget)
    if first < 1:
        raise ValueError("need at least one probe")
    samples: list[np.ndarray] = []
    done, goal = 0, first
    while True:
        while done < goal:
            n = min(block, goal - done)
            Z = _probes(gen, n, op, dist)
            samples.append((Z * op(Z)).sum(dim=1).double().cpu().numpy())
            done += n
            if progress is not None:
                progress(done, budget)
        res = _result(np.concatenate(samples), confidence, done, "hutchinson", "probes")
        if rtol is None:
            return res
        if done >= 2 and _met(res, rtol):
            res.stopped = "rtol"
            return res
        if done >= budget:
            res.stopped = "max_matvecs"
            return res
        goal = min(done + block, budget)


def _adaptive(run: Callable[[int, torch.Generator], TraceResult], matvecs: int, seed: int,
              rtol: float | None, max_matvecs: int | None,
              progress: Progress | None) -> TraceResult:
    """Run once with ``matvecs``; with ``rtol``, double and re-run from fresh probes until the
    half-width is met or the next run would pass ``max_matvecs`` (the default cap is 16x
    ``matvecs``). Only the last run is reported; ``matvecs`` counts all of them."""
    gen = torch.Generator().manual_seed(int(seed))
    if rtol is None:
        res = run(matvecs if max_matvecs is None else min(matvecs, max_matvecs), gen)
        if progress is not None:
            progress(res.matvecs, res.matvecs)
        return res
    cap = max_matvecs if max_matvecs is not None else 16 * matvecs
    spent, budget = 0, min(matvecs, cap)
    while True:
        res = run(budget, gen)
        spent += res.matvecs
        res.matvecs = spent
        if progress is not None:
            progress(spent, None)
        if _met(res, rtol):
            res.stopped = "rtol"
            return res
        if spent + 2 * budget > cap:
            res.stopped = "max_matvecs"
            return res
        budget *= 2


def _orth_rows(Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Y (s, P) -> (Q rows (s, P) orthonormal, R (s, s)) with Y^T = Q^T R."""
    Q, R = torch.linalg.qr(Y.T, mode="reduced")
    return Q.T.contiguous(), R


def hutchpp(
    op: SymmetricOperator,
    matvecs: int = 99,
    dist: str = "rademacher",
    seed: int = 0,
    rtol: float | None = None,
    confidence: float = 0.95,
    max_matvecs: int | None = None,
    progress: Progress | None = None,
) -> TraceResult:
    """Hutch++ with ``matvecs`` products: s = matvecs // 3 for the sketch A S, s for A Q and
    the rest as Hutchinson probes of the deflated (I-QQ^T) A (I-QQ^T). ``samples`` are
    tr(Q^T A Q) + g_i^T (I-QQ^T) A (I-QQ^T) g_i; the stderr is conditional on Q, where the
    estimate is unbiased. Adaptive ``rtol``: re-run with doubled ``matvecs`` (:func:`_adaptive`)."""
    def run(m: int, gen: torch.Generator) -> TraceResult:
        s = min(max(m // 3, 1), op.size)
        g = m - 2 * s
        if g < 2:
            raise ValueError("hutchpp needs at least 6 matvecs")
        Q, _ = _orth_rows(op(_probes(gen, s, op, dist)))
        low = float((Q * op(Q)).sum())
        G = _probes(gen, g, op, dist)
        G = G - (G @ Q.T) @ Q
        tail = (G * op(G)).sum(dim=1).double().cpu().numpy()
        return _result(low + tail, confidence, 2 * s + g, "hutchpp", "probes")

    return _adaptive(run, matvecs, seed, rtol, max_matvecs, progress)


def xtrace(
    op: SymmetricOperator,
    matvecs: int = 100,
    dist: str = "rademacher",
    seed: int = 0,
    rtol: float | None = None,
    confidence: float = 0.95,
    max_matvecs: int | None = None,
    progress: Progress | None = None,
) -> TraceResult:
    """XTrace with s = matvecs // 2 test vectors W: Y = A W = Q R, Z = A Q (2s products).

    Leaving w_i out of the basis removes the direction q_i = Q r_i, r_i the normalised
    column i of R^{-T}. With H = Q^T A Q, c_i = r_i^T Q^T w_i and u_i = Q^T w_i - c_i r_i:
    t_i = tr(H) - r_i^T H r_i + w_i^T y_i - 2 R[:, i]^T u_i + u_i^T H u_i, unbiased for
    tr(A). The estimate is mean(t_i) (``samples`` = t_i); the stderr is the jackknife over
    test vectors, not the paper's std(t_i)/sqrt(s), which covers too rarely.
    Adaptive ``rtol``: re-run with doubled ``matvecs`` (:func:`_adaptive`).
    """
    def run(m: int, gen: torch.Generator) -> TraceResult:
        s = min(max(m // 2, 2), op.size)
        W = _probes(gen, s, op, dist)
        Y = op(W)
        Q, R = _orth_rows(Y)
        Z = op(Q)
        H = (Q @ Z.T).double().cpu().numpy()
        H = (H + H.T) / 2
        Wq = (Q @ W.T).double().cpu().numpy()  # column i: Q^T w_i
        Rn = R.double().cpu().numpy()
        wy = (W * Y).sum(dim=1).double().cpu().numpy()
        t = _xtrace_samples(H, Wq, Rn, wy)
        res = _result(t, confidence, 2 * s, "xtrace", "probes")
        res.stderr = _xtrace_jackknife(H, Wq, Rn, wy)
        half = _quantile(confidence, s) * res.stderr
        res.ci_low, res.ci_high = res.estimate - half, res.estimate + half
        return res

    return _adaptive(run, matvecs, seed, rtol, max_matvecs, progress)


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
    return (np.trace(H, axis1=-2, axis2=-1)[..., None] - np.einsum(quad, X, H, X) + wy
            - 2 * np.sum(R * U, axis=-2) + np.einsum(quad, U, H, U))


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


def hutchinson_diagonal(
    op: SymmetricOperator,
    probes: int = 64,
    seed: int = 0,
    dist: str = "rademacher",
    block: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """diag(A) ~= sum_i z_i * (A z_i) / sum_i z_i * z_i; returns (estimate, stderr, matvecs).

    The stderr is std_i(z_i * A z_i / mean_i z_i * z_i) / sqrt(probes) per entry (exact
    for Rademacher probes, where z * z = 1; a first-order approximation for Gaussian).
    """
    if probes < 2:
        raise ValueError("hutchinson_diagonal needs at least 2 probes")
    gen = torch.Generator().manual_seed(int(seed))
    num = torch.zeros(op.size, dtype=torch.float64, device=op.device)
    sq = torch.zeros_like(num)
    den = torch.zeros_like(num)
    done = 0
    while done < probes:
        n = min(block, probes - done)
        Z = _probes(gen, n, op, dist)
        x = (Z * op(Z)).double()
        num += x.sum(0)
        sq += (x * x).sum(0)
        den += (Z.double() ** 2).sum(0)
        done += n
        if progress is not None:
            progress(done, probes)
    mean = num / done
    var = (sq - done * mean * mean).clamp_min(0) / (done - 1)
    scale = den / done
    est = (num / den).cpu().numpy()
    stderr = (var.sqrt() / scale / math.sqrt(done)).cpu().numpy()
    return est, stderr, done
