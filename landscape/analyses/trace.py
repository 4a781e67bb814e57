"""``trace``: tr(C) of a curvature matrix with a confidence interval, per layer and per entry.

Estimators from ``landscape.linalg.trace``: Hutchinson (1989) tr(C) ≈ mean_i z_iᵀ C z_i; Hutch++
(Meyer et al. 2021) and XTrace (Epperly, Tropp, Webber 2023), which deflate a sketched top
subspace first. The interval is estimate ± t_{(1+confidence)/2} · stderr. Per layer: the traces
of the diagonal blocks C_bb (``problem.restrict``), which sum to tr(C) exactly; the diagonal by
XDiag (Epperly, Tropp, Webber 2024) with ``xtrace``, else Bekas et al. (2007). With ``rtol``,
Hutchinson adds probe blocks and Hutch++/XTrace double their budget until the half-width is
<= rtol·|estimate| or ``max_matvecs`` is spent. An operator no larger than one run's budget
is traced exactly from its P unit vectors (method ``exact``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.stats import t as student_t

from .. import memplan
from ..curvature import CURVATURES, CurvatureOperator
from ..errors import InputError, NumericalError
from ..linalg import trace as est
from ..linalg.xdiag import xdiag
from ..problem import Problem
from ..results import Result

METHODS = ("hutchinson", "hutchpp", "xtrace")
FIRST_RUN = {"hutchinson": 64, "hutchpp": 99, "xtrace": 100}  # matvecs of one run by default
MIN_RUN = {"hutchinson": 2, "hutchpp": 6, "xtrace": 6}
ProgressFn = Callable[[int, "int | None"], None]


@dataclass
class Estimate:
    """One trace estimate and its history: (matvecs spent, estimate, half-width) per step."""

    result: est.TraceResult
    history: np.ndarray  # (steps, 3)

    def tree(self) -> dict[str, Any]:
        r = self.result
        return {
            "estimate": r.estimate,
            "stderr": r.stderr,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "samples": np.asarray(r.samples, dtype=np.float64),
            "attrs": {
                "method": r.method,
                "stopped": r.stopped,
                "matvecs": r.matvecs,
                "confidence": r.confidence,
            },
        }


@dataclass
class TraceAnalysis(Result):
    """The whole-model trace; optionally per-layer traces and the diagonal."""

    whole: Estimate
    curvature: str
    rtol: float | None = None
    block_names: list[str] = field(default_factory=list)
    block_sizes: list[int] = field(default_factory=list)
    blocks: list[Estimate] = field(default_factory=list)
    diagonal: np.ndarray | None = None
    diagonal_stderr: np.ndarray | None = None
    diagonal_matvecs: int = 0
    diagonal_method: str = ""
    matvecs: int = 0
    max_run_matvecs: int = 0  # the largest Hutch++/XTrace run the memory plan allows
    memory_note: str = ""  # why runs are smaller than asked (landscape.memplan), else ""
    probe_block: str = ""  # probes per vmapped product and how that was chosen (blocking.py)

    @property
    def estimate(self) -> float:
        """The whole model's trace estimate."""
        return float(self.whole.result.estimate)

    @property
    def stderr(self) -> float:
        """Its standard error."""
        return float(self.whole.result.stderr)

    command: ClassVar[str] = "trace"
    descriptions: ClassVar[dict[str, str]] = {
        "trace/estimate": "estimate of tr(C), C the curvature matrix",
        "trace/stderr": "standard error of the estimate",
        "trace/ci_low": "lower end of the confidence interval",
        "trace/ci_high": "upper end of the confidence interval",
        "trace/samples": "per-probe estimates whose mean is the estimate (empty for exact)",
        "trace/history/matvecs": "matvecs spent when the estimate below was made",
        "trace/history/estimate": "estimate after that many matvecs",
        "trace/history/half_width": "confidence half-width after that many matvecs",
        "trace/diagonal": "estimate of diag(C), in θ's order",
        "trace/diagonal_stderr": "standard error of each diagonal entry",
        "trace/per_layer/names": "parameter blocks in θ's order (values under /blocks)",
        "trace/per_layer/sizes": "parameters per block",
        "trace/per_layer/sum": "sum of the per-block traces (an estimate of tr(C))",
        "trace/per_layer/sum_stderr": "standard error of the sum (independent probes)",
        "trace/per_layer/difference": "sum of the block traces minus the whole-model estimate",
        "trace/per_layer/z": "difference / its standard error (~N(0,1) when both are honest)",
    }

    @property
    def block_sum(self) -> tuple[float, float]:
        """(Σ_b tr(C_bb), its standard error)."""
        total = sum(b.result.estimate for b in self.blocks)
        return total, math.sqrt(sum(b.result.stderr**2 for b in self.blocks))

    @property
    def block_z(self) -> float | None:
        """(Σ_b tr(C_bb) − tr(C)) / its combined standard error: ~N(0, 1) when both estimates
        are honest (None without blocks)."""
        if not self.blocks:
            return None
        total, se = self.block_sum
        w = self.whole.result  # both exact: the difference is rounding, not an error
        combined = max(math.hypot(se, w.stderr), 1e-12 * max(abs(w.estimate), 1.0))
        return (total - w.estimate) / combined

    def tree(self) -> dict[str, Any]:
        h = self.whole.history
        group = self.whole.tree()
        group["history"] = {
            "matvecs": h[:, 0].astype(np.int64),
            "estimate": h[:, 1],
            "half_width": h[:, 2],
        }
        group["attrs"]["curvature"] = self.curvature
        if self.max_run_matvecs:
            group["attrs"]["max_run_matvecs"] = self.max_run_matvecs
        if self.memory_note:
            group["attrs"]["memory_note"] = self.memory_note
        if self.probe_block:
            group["attrs"]["probe_block"] = self.probe_block
        if self.rtol is not None:
            group["attrs"]["rtol"] = self.rtol
        if self.diagonal is not None:
            group["diagonal"] = self.diagonal
            group["diagonal_stderr"] = self.diagonal_stderr
            group["attrs"]["diagonal_matvecs"] = self.diagonal_matvecs
            group["attrs"]["diagonal_method"] = self.diagonal_method
        out: dict[str, Any] = {"trace": group}
        if self.blocks:
            total, se = self.block_sum
            group["per_layer"] = {
                "names": self.block_names,
                "sizes": np.array(self.block_sizes),
                "sum": total,
                "sum_stderr": se,
                "difference": total - self.whole.result.estimate,
                "z": self.block_z,
            }
            out["blocks"] = {n: {"trace": b.tree()} for n, b in zip(self.block_names, self.blocks)}
        return out


class _Counting:
    """Forwards to an operator and reports every product to ``progress`` (running total)."""

    def __init__(
        self,
        op: CurvatureOperator,
        tally: list[int],
        progress: ProgressFn | None,
        total: int | None,
    ) -> None:
        self.op, self.tally, self.progress, self.total = op, tally, progress, total
        self.size, self.dtype, self.device = op.size, op.dtype, op.device

    @property
    def matvecs(self) -> int:
        return self.op.matvecs

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        out = self.op(V)
        self.tally[0] += V.shape[0] if V.dim() == 2 else 1
        if self.progress is not None:
            self.progress(self.tally[0], self.total)
        return out


def _prefix_history(samples: np.ndarray, confidence: float) -> np.ndarray:
    """Running Hutchinson estimate and half-width after k probes (k = k matvecs), ≤ 200 steps."""
    n = samples.size
    ks = np.unique(np.r_[np.geomspace(2, max(n, 2), 200).astype(int), n])
    ks = ks[(ks >= 2) & (ks <= n)]
    csum, csq = np.cumsum(samples), np.cumsum(samples**2)
    mean = csum[ks - 1] / ks
    var = np.maximum(csq[ks - 1] - ks * mean**2, 0) / (ks - 1)
    half = student_t.ppf(0.5 + confidence / 2, ks - 1) * np.sqrt(var / ks)
    return np.column_stack([ks, mean, half])


@dataclass(frozen=True)
class _Plan:
    """How every estimate of one analysis is made."""

    method: str
    probes: int | None
    rtol: float | None
    confidence: float
    max_matvecs: int | None
    max_run: int | None = None  # the largest Hutch++/XTrace run that fits in memory

    def check(self, curvature: str, chunk: int | None) -> None:
        m, least = self.method, MIN_RUN.get(self.method, 2)
        if m not in METHODS:
            raise InputError(f"unknown `method` {m!r}: use one of {', '.join(METHODS)}")
        if curvature not in CURVATURES:
            raise InputError(f"unknown `curvature` {curvature!r}: use {', '.join(CURVATURES)}")
        if self.probes is not None and self.probes < least:
            raise InputError(f"`probes` {self.probes}: {m} needs at least {least}")
        if self.rtol is not None and not self.rtol > 0:
            raise InputError(f"`rtol` must be positive, got {self.rtol}")
        if not 0 < self.confidence < 1:
            raise InputError(f"`confidence` must lie strictly in (0, 1), got {self.confidence}")
        if self.max_matvecs is not None and self.max_matvecs < least:
            raise InputError(f"`max_matvecs` {self.max_matvecs}: {m} needs at least {least}")
        if chunk is not None and chunk < 1:
            raise InputError(f"`chunk` must be positive, got {chunk}")

    def wanted(self) -> int:
        """Matvecs of the first run as asked (the adaptive Hutchinson starts with 32)."""
        if self.probes is not None:
            return self.probes
        return 32 if self.method == "hutchinson" and self.rtol else FIRST_RUN[self.method]

    def first_run(self) -> int:
        """Matvecs of the first run, within the memory plan's ``max_run``."""
        return self.wanted() if self.max_run is None else min(self.wanted(), self.max_run)


def _estimate(op: _Counting, plan: _Plan, seed: int) -> Estimate:
    """One trace estimate of ``op`` with its history (see the module docstring)."""
    first, rtol, conf, cap = plan.first_run(), plan.rtol, plan.confidence, plan.max_matvecs
    if op.size <= first and (cap is None or op.size <= cap):
        r = est.exact_trace(op, conf)
        return Estimate(r, r.history)
    if plan.method == "hutchinson":
        r = est.hutchinson(
            op, probes=plan.probes, seed=seed, rtol=rtol, confidence=conf, max_matvecs=cap
        )
        return Estimate(r, _prefix_history(r.samples, conf))
    fn = est.xtrace if plan.method == "xtrace" else est.hutchpp
    # a fixed budget beyond what fits runs as several runs that fit, averaged (linalg.trace)
    asked = plan.wanted() if rtol is None else first
    r = fn(op, matvecs=asked, seed=seed, rtol=rtol, confidence=conf, max_matvecs=cap,
           max_run=plan.max_run)
    return Estimate(r, r.history)


def trace(
    problem: Problem,
    method: str = "xtrace",
    probes: int | None = None,
    rtol: float | None = None,
    confidence: float = 0.95,
    max_matvecs: int | None = None,
    curvature: str = "hessian",
    per_layer: bool = False,
    diagonal: bool = False,
    chunk: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TraceAnalysis:
    """Estimate tr(C) of ``problem``'s ``curvature`` matrix at its θ (see the module docstring).

    ``probes``: matvecs of one run (Hutchinson: the number of probes). ``max_matvecs`` caps each
    estimate (the whole model, each block) separately. Every estimate draws from its own seed
    derived from ``seed``.
    """
    plan = _Plan(method, probes, rtol, confidence, max_matvecs)
    plan.check(curvature, chunk)
    note = ""
    if method != "hutchinson" and problem.size > plan.first_run():
        # before any block is allocated: the largest run that fits (or InputError, exit 2)
        fit, note = memplan.plan_run(method, plan.first_run(), problem.size, problem.dtype,
                                     problem.device, product_rows=chunk or 16)
        plan = replace(plan, max_run=fit)
    tally = [0]
    total = max_matvecs if not (per_layer or diagonal) else None  # for the progress bar

    def operator(p: Problem) -> _Counting:
        return _Counting(
            CurvatureOperator(p, curvature, chunk=chunk, seed=seed), tally, progress, total
        )

    whole_op = operator(problem)
    whole = _estimate(whole_op, plan, seed)
    runs = whole.result.history.shape[0]
    if note and rtol is None and runs > 1:  # a fixed budget pooled in runs that fit (linalg)
        note += f"; its {whole.result.matvecs} matvecs ran as {runs} independent runs of " \
                f"{plan.max_run}, averaged"
    if note:
        problem.notes.append(note)
    out = TraceAnalysis(whole=whole, curvature=curvature, rtol=rtol, memory_note=note,
                        max_run_matvecs=min(plan.max_run or 0, problem.size),
                        probe_block=whole_op.op.blocks.how)
    if per_layer:
        for i, block in enumerate(problem.blocks()):
            op = operator(problem.restrict(block.names))
            out.blocks.append(_estimate(op, plan, seed + 7919 * (i + 1)))
            out.block_names.append(block.name)
            out.block_sizes.append(block.size)
    if diagonal:
        n = probes if probes is not None else est.DEFAULT_PROBES
        op = operator(problem)
        if op.size <= n:
            out.diagonal, out.diagonal_stderr = est.exact_diagonal(op), np.zeros(op.size)
            out.diagonal_matvecs, out.diagonal_method = op.size, "exact"
        elif method == "xtrace":
            fit, dnote = memplan.plan_run("xdiag", n, problem.size, problem.dtype,
                                          problem.device, product_rows=chunk or 16)
            if dnote:
                n = fit
                problem.notes.append(dnote)
                out.memory_note = "; ".join(filter(None, [out.memory_note, dnote]))
            out.diagonal, out.diagonal_stderr, out.diagonal_matvecs = xdiag(
                op, matvecs=n, seed=seed + 104_729
            )
            out.diagonal_method = "xdiag"
        else:
            out.diagonal, out.diagonal_stderr, out.diagonal_matvecs = est.hutchinson_diagonal(
                op, probes=n, seed=seed + 104_729
            )
            out.diagonal_method = "hutchinson"
    out.matvecs = tally[0]
    values = [whole.result.estimate] + [b.result.estimate for b in out.blocks]
    if not all(math.isfinite(v) for v in values) or (
        out.diagonal is not None and not np.all(np.isfinite(out.diagonal))
    ):
        raise NumericalError("the trace estimate is not finite (non-finite curvature products)")
    return out
