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
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import t as student_t

from landscape.linalg.operator import SymmetricOperator

__all__ = [
    "TraceResult", "exact_diagonal", "exact_trace", "hutchinson", "hutchinson_diagonal", "hutchpp",
    "xtrace",
]

Progress = Callable[[int, "int | None"], None]
DISTS = ("rademacher", "gaussian")
DEFAULT_PROBES = 64
DEFAULT_MAX_BLOCKS = 100  # adaptive Hutchinson without max_matvecs: at most this many blocks


@dataclass
class TraceResult:
    """A trace estimate with its standard error and ``confidence`` interval. ``samples``
    are the per-probe estimates whose mean is ``estimate`` (empty where a method has
    none); ``stopped`` is "probes" (fixed budget), "rtol" (tolerance met),
    "max_matvecs" (budget spent before the tolerance was met) or "memory" (the next run's
    blocks would not fit in memory)."""

    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    confidence: float
    samples: np.ndarray
    matvecs: int
    method: str
    stopped: str
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    """Rows (matvecs spent, estimate, half-width), one per adaptive round."""


def _probes(gen: torch.Generator, n: int, op: SymmetricOperator, dist: str) -> torch.Tensor:
    """n probe rows from the CPU generator, moved to the op's dtype and device."""
    if dist == "rademacher":  # ±1 is exact in every dtype: no float64 block on the way
        z = torch.randint(0, 2, (n, op.size), generator=gen, dtype=torch.int8)
        return (z.to(device=op.device, dtype=op.dtype) * 2).sub_(1)
    if dist == "gaussian":
        z = torch.randn((n, op.size), generator=gen, dtype=torch.float64)
        return z.to(device=op.device, dtype=op.dtype)
    raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")


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


def _adaptive(op: SymmetricOperator, run: Callable[[int, torch.Generator], TraceResult],
              matvecs: int, seed: int, rtol: float | None, confidence: float,
              max_matvecs: int | None, progress: Progress | None,
              max_run: int | None = None) -> TraceResult:
    """Run once with ``matvecs``; with ``rtol``, double and re-run from fresh probes until the
    half-width is met or the next run would pass ``max_matvecs`` (the default cap is 16x
    ``matvecs``) or ``max_run`` (the largest run that fits in memory: stopped "memory").
    Only the last run is reported; ``matvecs`` counts all of them and ``history`` has one row
    per run. A run of at least P products is replaced by the exact trace. Without ``rtol``, a
    budget above ``max_run`` is spent in independent runs of ``max_run``, averaged
    (:func:`_pooled`)."""
    gen = torch.Generator().manual_seed(int(seed))
    first = matvecs if max_matvecs is None else min(matvecs, max_matvecs)
    cap = first if rtol is None else max_matvecs if max_matvecs is not None else 16 * matvecs
    spent, budget, rows = 0, min(matvecs, cap), []
    if rtol is None and max_run is not None and max_run < budget < op.size:
        return _pooled(run, budget // max_run, max_run, gen, confidence, progress)
    if max_run is not None and budget < op.size:
        budget = min(budget, max_run)
    while True:
        # a run that would span the whole space costs more than the exact trace
        res = exact_trace(op, confidence) if budget >= op.size else run(budget, gen)
        spent += res.matvecs
        res.matvecs = spent
        rows.append((spent, res.estimate, res.ci_high - res.estimate))
        res.history = np.array(rows, dtype=np.float64)
        if progress is not None:
            progress(spent, cap)
        if rtol is None or res.method == "exact":
            if rtol is not None:
                res.stopped = "rtol"
            return res
        if _met(res, rtol):
            res.stopped = "rtol"
            return res
        if spent + 2 * budget > cap:
            res.stopped = "max_matvecs"
            return res
        if max_run is not None and 2 * budget > max_run and 2 * budget < op.size:
            res.stopped = "memory"
            return res
        budget *= 2


def _pooled(run: Callable[[int, torch.Generator], TraceResult], n: int, m: int,
            gen: torch.Generator, confidence: float, progress: Progress | None) -> TraceResult:
    """The mean of n independent runs of m matvecs (fresh probes each), when one run of n·m
    would not fit in memory: stderr sqrt(Σ se_i²)/n, the t quantile on the runs' pooled
    degrees of freedom Σ(s_i − 1) + 1 (Welch-Satterthwaite for equal stderrs; s_i the
    run's samples); ``history`` has the running mean after each run."""
    runs: list[TraceResult] = []
    rows = []
    for _ in range(n):
        runs.append(run(m, gen))
        spent = sum(r.matvecs for r in runs)
        est = float(np.mean([r.estimate for r in runs]))
        se = math.sqrt(sum(r.stderr ** 2 for r in runs)) / len(runs)
        dof = sum(max(r.samples.size - 1, 1) for r in runs) + 1
        half = _quantile(confidence, dof) * se
        rows.append((spent, est, half))
        if progress is not None:
            progress(spent, m * n)
    return TraceResult(est, se, est - half, est + half, confidence,
                       np.concatenate([r.samples for r in runs]), spent, runs[0].method, "probes",
                       np.array(rows, dtype=np.float64))


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
    max_run: int | None = None,
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

    return _adaptive(op, run, matvecs, seed, rtol, confidence, max_matvecs, progress, max_run)


def exact_diagonal(op: SymmetricOperator, chunk: int = 64) -> np.ndarray:
    """diag(A) from the P unit vectors e_i (P matvecs, ``chunk`` at a time)."""
    parts = []
    for i in range(0, op.size, chunk):
        k = min(chunk, op.size - i)
        E = torch.zeros(k, op.size, dtype=op.dtype, device=op.device)
        E[torch.arange(k), torch.arange(i, i + k)] = 1
        parts.append(op(E).diagonal(offset=i))
    return torch.cat(parts).double().cpu().numpy()


def exact_trace(op: SymmetricOperator, confidence: float = 0.95) -> TraceResult:
    """tr(A) = Σ_i e_iᵀ A e_i with no error (method and stopped "exact"; P matvecs)."""
    v = float(exact_diagonal(op).sum())
    hist = np.array([[op.size, v, 0.0]])
    return TraceResult(v, 0.0, v, v, confidence, np.zeros(0), op.size, "exact", "exact", hist)


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


from landscape.linalg.xtrace import xtrace  # noqa: E402  (XTrace builds on the pieces above)
