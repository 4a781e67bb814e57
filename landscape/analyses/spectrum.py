"""``spectrum``: top eigenpairs of a curvature matrix C (Lanczos) and its spectral density (SLQ).

Eigenpairs: Lanczos with full reorthogonalisation (Lanczos 1950; Paige 1971), or ARPACK / CuPy,
stopped when every wanted Ritz pair has relative residual ||C x - θ x|| / |θ| <= tol.
Density: stochastic Lanczos quadrature φ(x) = mean_r Σ_j w_rj N(x; θ_rj, σ²) (Lin, Saad, Yang
2016; Ghorbani, Krishnan, Xiao 2019), trace = P · mean_r Σ_j w_rj θ_rj (Hutchinson on the same
quadrature). Bulk edge: walking right from the density's mode, the first x where φ(x) drops below
half the smoothed height of one isolated eigenvalue, 1/(2 P σ √(2π)); outliers lie beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .. import memory
from ..curvature import make_operator
from ..errors import InputError
from ..intervals import CONFIDENCE, t_interval
from ..linalg.eigsh import DENSE_LIMIT, dense_eigh, eigsh
from ..linalg.lanczos import DEFAULT_STEP_CAP, WHICH
from ..linalg.slq import density as smooth_density
from ..linalg.slq import slq
from ..linalg.spectral_stats import bulk_edge, mass_below_runs
from ..memplan import PRODUCT_VECTORS, gib, vector_bytes
from ..problem import Problem, ProgressFn
from ..results import Result

MIN_SLQ_STEPS = 10  # fewer Lanczos steps a run give too coarse a density to report


@dataclass
class Density:
    """SLQ quadrature (raw, so it can be re-smoothed) and its Gaussian-smoothed density."""

    grid: np.ndarray
    values: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float

    def tree(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "values": self.values,
            "nodes": self.nodes,
            "weights": self.weights,
            "attrs": {"sigma": self.sigma},
        }


@dataclass
class Spectrum:
    """Eigenpairs and summary scalars of one operator (the whole model or one block)."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: bool
    solver: str
    which: str
    tol: float
    n_params: int
    matvecs: int
    lambda_max: float
    lambda_min: float | None
    lambda_max_from: str
    lambda_min_from: str
    eigenvectors: np.ndarray | None = None
    negative_mass: float | None = None
    negative_mass_stderr: float | None = None
    negative_mass_ci: tuple[float, float] | None = None
    bulk_edge: float | None = None
    n_outliers: int | None = None
    n_outliers_slq: float | None = None
    trace: float | None = None
    trace_stderr: float | None = None
    trace_ci: tuple[float, float] | None = None
    confidence: float = CONFIDENCE
    density: Density | None = None
    probe_block: str = ""  # SLQ's probes per vmapped product and how chosen (landscape.blocking)
    memory_note: str = ""  # what free memory held smaller than asked (basis, SLQ steps), else ""

    @property
    def ratio(self) -> float | None:
        """|λ_min / λ_max|; None without a λ_min estimate, NaN when λ_max is 0."""
        if self.lambda_min is None:
            return None
        return abs(self.lambda_min / self.lambda_max) if self.lambda_max != 0 else math.nan

    def tree(self) -> dict[str, Any]:
        spec = {
            k: getattr(self, k)
            for k in ("eigenvalues", "residuals", "eigenvectors", "lambda_max", "lambda_min")
        }
        spec["ratio"] = self.ratio
        for k in ("negative_mass", "bulk_edge", "n_outliers", "n_outliers_slq", "trace"):
            spec[k] = getattr(self, k)
        spec.update(trace_stderr=self.trace_stderr, converged=self.converged, tol=self.tol)
        spec["negative_mass_stderr"] = self.negative_mass_stderr
        for name, ci in (("trace", self.trace_ci), ("negative_mass", self.negative_mass_ci)):
            if ci is not None:
                spec[f"{name}_ci_low"], spec[f"{name}_ci_high"] = ci
        if self.density is not None:
            spec["attrs"] = {"confidence": self.confidence}
            if self.probe_block:
                spec["attrs"]["probe_block"] = self.probe_block
        if self.memory_note:
            spec.setdefault("attrs", {})["memory_note"] = self.memory_note
        spec.update(n_params=self.n_params, matvecs=self.matvecs, solver=self.solver)
        spec.update(which=self.which, lambda_max_from=self.lambda_max_from)
        spec["lambda_min_from"] = self.lambda_min_from
        out: dict[str, Any] = {"spectrum": spec}
        if self.density is not None:
            out["density"] = self.density.tree()
        return out


@dataclass
class SpectrumResult(Result):
    """The whole model's spectrum, and per parameter block with ``per_layer``."""

    whole: Spectrum
    curvature: str
    blocks: dict[str, Spectrum] = field(default_factory=dict)

    command: ClassVar[str] = "spectrum"
    descriptions: ClassVar[dict[str, str]] = {
        "spectrum/eigenvalues": "wanted eigenvalues of the curvature matrix, descending",
        "spectrum/residuals": "relative residuals ||C x - λ x|| / max(|λ|, floor) (bounds)",
        "spectrum/eigenvectors": "unit eigenvectors (k, P), rows in eigenvalue order",
        "spectrum/lambda_max": "largest eigenvalue (source in attr lambda_max_from)",
        "spectrum/lambda_min": "smallest eigenvalue (source in attr lambda_min_from); absent "
        "when nothing estimated it",
        "spectrum/ratio": "|lambda_min / lambda_max| (absent without lambda_min)",
        "spectrum/negative_mass": "SLQ mass below -sqrt(eps)·max|λ| (CMS-bracket midpoint), "
        "mean over the SLQ runs",
        "spectrum/negative_mass_stderr": "standard error of negative_mass over the SLQ runs",
        "spectrum/negative_mass_ci_low": "lower end of the Student-t confidence interval of "
        "negative_mass (level in attr confidence), clipped to [0, 1]",
        "spectrum/negative_mass_ci_high": "upper end of the Student-t confidence interval of "
        "negative_mass (level in attr confidence), clipped to [0, 1]",
        "spectrum/bulk_edge": "right edge of the density's bulk (see docs/spectrum.md)",
        "spectrum/n_outliers": "computed eigenvalues above the bulk edge (a lower bound)",
        "spectrum/n_outliers_slq": "P × SLQ mass above the bulk edge (an estimate)",
        "spectrum/trace": "SLQ trace estimate P · mean_r Σ_j w_rj θ_rj",
        "spectrum/trace_stderr": "standard error of the trace estimate over the SLQ runs",
        "spectrum/trace_ci_low": "lower end of the Student-t confidence interval of the trace "
        "over the SLQ runs (level in attr confidence)",
        "spectrum/trace_ci_high": "upper end of the Student-t confidence interval of the trace "
        "over the SLQ runs (level in attr confidence)",
        "spectrum/converged": "every wanted residual is <= tol",
        "spectrum/tol": "relative residual every wanted eigenpair had to reach",
        "spectrum/n_params": "parameters of this operator (its size P)",
        "spectrum/matvecs": "curvature-vector products spent on this operator",
        "density/grid": "points x of the smoothed density",
        "density/values": "Gaussian-smoothed SLQ density at grid, integrates to 1",
        "density/nodes": "Gauss quadrature nodes (Ritz values) per SLQ run (runs, m)",
        "density/weights": "Gauss quadrature weights per SLQ run (runs, m), rows sum to 1",
    }

    @property
    def matvecs(self) -> int:
        return self.whole.matvecs + sum(b.matvecs for b in self.blocks.values())

    def tree(self) -> dict[str, Any]:
        out = self.whole.tree()
        out["spectrum"]["curvature"] = self.curvature
        if self.blocks:
            out["blocks"] = {name: b.tree() for name, b in self.blocks.items()}
        return out


def _check(top_k: int, which: str, tol: float, runs: int, steps: int, sigma: float | None) -> None:
    if which not in WHICH:
        raise InputError(f"unknown `which` {which!r}: use one of {', '.join(WHICH)}")
    if top_k < 1 or runs < 1 or steps < 1:
        raise InputError("`top_k`, `slq_runs` and `slq_steps` must be at least 1")
    if not tol > 0 or (sigma is not None and not sigma > 0):
        raise InputError("`tol` and `sigma` must be positive")


def _offset(progress: ProgressFn | None, start: int, total: int | None) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda done, _t=None: progress(start + done, total)


def _add_density(
    s: Spectrum,
    op: Any,
    problem: Problem,
    slq_runs: int,
    slq_steps: int,
    sigma: float | None,
    seed: int,
    top_known: bool,
    bottom_known: bool,
    progress: ProgressFn | None,
) -> None:
    """SLQ density, trace and negative mass, each statistic with its interval over the runs."""
    P = s.n_params
    done = op.matvecs
    slq_steps = _steps_that_fit(s, problem, slq_steps)
    q = slq(
        op,
        runs=slq_runs,
        steps=slq_steps,
        seed=seed + 1,
        progress=_offset(progress, done, done + slq_runs * min(slq_steps, P)),
    )
    grid, values, sig = smooth_density(q.nodes, q.weights, sigma=sigma)
    s.density = Density(grid, values, q.nodes, q.weights, sig)
    live = q.nodes[q.weights > 0]
    # A run whose Krylov space was exhausted has the operator's eigenvalues as its nodes.
    exhausted = (q.steps < min(slq_steps, P)) | (q.steps == P)
    how = "slq (exact: Krylov space exhausted)" if exhausted.any() else None
    # Ritz values lie inside [λ_min, λ_max]: an SLQ extreme node is a bound, not the value.
    if not top_known and live.max() > s.lambda_max:
        s.lambda_max, s.lambda_max_from = float(live.max()), how or "slq (lower bound)"
    if not bottom_known:
        low = float(live.min())
        if how is None and low > float(s.eigenvalues.min()):
            s.lambda_min = float(s.eigenvalues.min())
            s.lambda_min_from = "eigensolver (upper bound)"
        else:
            s.lambda_min, s.lambda_min_from = low, how or "slq (upper bound)"
    scale = max(abs(s.lambda_max), abs(s.lambda_min))
    zero = math.sqrt(torch.finfo(problem.dtype).eps) * scale
    mass = q.weights / q.weights.shape[0]
    neg = t_interval(mass_below_runs(q.nodes, q.weights, -zero, zero, exhausted), s.confidence)
    s.negative_mass, s.negative_mass_stderr = neg.mean, neg.stderr
    s.negative_mass_ci = (max(neg.low, 0.0), min(neg.high, 1.0))
    s.bulk_edge = bulk_edge(grid, values, P, sig)
    s.n_outliers = int(np.sum(s.eigenvalues > s.bulk_edge)) if top_known else None
    s.n_outliers_slq = float(P * mass[q.nodes > s.bulk_edge].sum())
    tr = t_interval(P * np.sum(q.nodes * q.weights, axis=1), s.confidence)
    s.trace, s.trace_stderr, s.trace_ci = q.trace_estimate, q.trace_stderr, (tr.low, tr.high)


def _steps_that_fit(s: Spectrum, problem: Problem, slq_steps: int) -> int:
    """``slq_steps``, or fewer with a note when one run's basis would not fit in free memory."""
    most = memory.basis_rows(problem, min(slq_steps, s.n_params) + PRODUCT_VECTORS)
    if most is None or most >= min(slq_steps, s.n_params):
        return slq_steps
    row = gib(vector_bytes(s.n_params, problem.dtype))
    if most < MIN_SLQ_STEPS:
        raise InputError(f"the density needs {MIN_SLQ_STEPS} vectors of {s.n_params} parameters "
                         f"({row} each) in memory and {most} fit: use `density=False`")
    s.memory_note = "; ".join(filter(None, [s.memory_note, (
        f"SLQ runs held to {most} steps (not {slq_steps}) by free memory ({row} a vector)")]))
    return most


def _one(
    problem: Problem,
    top_k: int,
    which: str,
    tol: float,
    curvature: str,
    slq_runs: int,
    slq_steps: int,
    sigma: float | None,
    solver: str,
    density: bool,
    save_eigenvectors: bool,
    chunk: int | None,
    seed: int,
    progress: ProgressFn | None,
) -> Spectrum:
    op = make_operator(problem, curvature, chunk=chunk, seed=seed)
    P = problem.size
    s_note = ""
    wanted = 2 * top_k if which == "both" else top_k
    if wanted >= P and P <= DENSE_LIMIT:  # every eigenvalue is wanted: form C and eigh it
        eig = dense_eigh(op, save_eigenvectors, progress=_offset(progress, 0, P))
        which_done = "all"
    elif top_k > P:
        raise InputError(
            f"`top_k` {top_k} is more than the {P} parameters (the exact spectrum is computed "
            f"densely only up to {DENSE_LIMIT} parameters): use `top_k` {P} or less"
        )
    else:
        eig = eigsh(
            op,
            k=top_k,
            which=which,
            tol=tol,
            seed=seed,
            solver=solver,
            return_vectors=save_eigenvectors,
            progress=_offset(progress, 0, None),
            max_rows=memory.basis_rows(problem, DEFAULT_STEP_CAP) if solver == "lanczos" else None,
        )
        which_done = which
        if eig.restarts:
            s_note = (f"the Krylov basis was held to {eig.max_rows} vectors "
                      f"({gib(vector_bytes(P, problem.dtype))} each) by free memory: "
                      f"{eig.restarts} thick restart{'s' if eig.restarts != 1 else ''}")
    lam = np.asarray(eig.eigenvalues, dtype=np.float64)
    vectors = None if eig.eigenvectors is None else eig.eigenvectors.double().cpu().numpy()
    exact = which_done == "all"
    top_known = exact or which in ("largest", "both")
    bottom_known = exact or which in ("smallest", "both")
    if which_done == "magnitude":  # the k largest |λ| reach an end only where they hold its sign
        top_known, bottom_known = lam.max() > 0, lam.min() < 0
    source = "dense eigh (exact)" if exact else "eigensolver"
    s = Spectrum(
        memory_note=s_note,
        eigenvalues=lam,
        residuals=np.asarray(eig.residuals),
        converged=bool(np.all(np.asarray(eig.residuals) <= tol)) if exact else eig.converged,
        solver=eig.solver,
        which=which,
        tol=tol,
        n_params=P,
        matvecs=0,
        lambda_max=float(lam.max()),
        lambda_min=float(lam.min()) if bottom_known else None,
        eigenvectors=vectors,
        lambda_max_from=source if top_known else "eigensolver (lower bound)",
        lambda_min_from=source if bottom_known else "none",
    )
    if density:
        _add_density(s, op, problem, slq_runs, slq_steps, sigma, seed, top_known, bottom_known,
                     progress)
        s.probe_block = op.blocks.how
    s.matvecs = op.matvecs
    return s


def spectrum(
    problem: Problem,
    top_k: int = 5,
    which: str = "largest",
    tol: float = 1e-6,
    curvature: str = "hessian",
    slq_runs: int = 10,
    slq_steps: int = 100,
    sigma: float | None = None,
    solver: str = "lanczos",
    density: bool = True,
    save_eigenvectors: bool = False,
    per_layer: bool = False,
    chunk: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> SpectrumResult:
    """Top-k eigenpairs, SLQ density and summary of ``curvature`` at ``problem``'s θ.

    ``which``: largest (algebraic), smallest, both (k from each end) or magnitude. With
    ``per_layer``, the same per block of ``problem.blocks()`` on ``problem.restrict(names)``
    (the diagonal block of C). ``progress(matvecs, total)`` counts products over all phases.
    """
    kw = {k: v for k, v in locals().items() if k not in ("problem", "per_layer", "progress")}
    _check(top_k, which, tol, slq_runs, slq_steps, sigma)
    whole = _one(problem, progress=progress, **kw)
    result = SpectrumResult(whole=whole, curvature=curvature)
    if per_layer:
        for block in problem.blocks():
            done = result.matvecs
            result.blocks[block.name] = _one(
                problem.restrict(block.names), progress=_offset(progress, done, None), **kw
            )
    return result
