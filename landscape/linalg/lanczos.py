"""Lanczos with full reorthogonalisation for a few extreme eigenpairs of a symmetric operator.

After m steps, V_m^T A V_m = T_m (tridiagonal: alphas on the diagonal, betas beside it) and
A V_m = V_m T_m + beta_m v_{m+1} e_m^T, so a Ritz pair (theta_i, V_m s_i) has residual norm
|beta_m * s_{m,i}| (Lanczos 1950; Paige 1971; Golub & Van Loan, Matrix Computations, 10.1).
Every new vector is orthogonalised against the whole basis twice, classical Gram-Schmidt
"twice is enough" (Giraud, Langou, Rozloznik 2005), in the operator's dtype; T_m is solved
in float64. An exhausted Krylov space (beta ~ 0) is an exact invariant subspace: the search
restarts from a fresh random vector orthogonal to the basis, which also recovers repeated
eigenvalues, and stops once a finished block no longer changes the wanted eigenvalues.
When fewer basis vectors fit in memory than the run needs, it goes on with thick restarts
(:mod:`landscape.linalg.restart`) in that many.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from landscape.errors import InputError, NumericalError
from landscape.linalg.basis import KrylovBasis, rows_that_fit
from landscape.linalg.operator import SymmetricOperator
from landscape.linalg.restart import thick_restart

__all__ = ["EigResult", "lanczos", "select_indices", "relative_residuals", "WHICH"]

WHICH = ("largest", "smallest", "both", "magnitude")
DEFAULT_STEP_CAP = 500  # most Lanczos steps when max_steps is not given
CHECK_EVERY = 5  # steps between convergence checks while tol looks more than 2 * 5 steps away

Progress = Callable[[int, "int | None"], None]


@dataclass
class EigResult:
    """Eigenvalues sorted descending (algebraically, whatever ``which`` was), their relative
    residuals (Lanczos: the bound |beta_m s_mi| / max(|theta_i|, floor); scipy/cupy: the true
    ||A x - theta x|| / max(|theta_i|, floor)), optional eigenvectors (k, P) as rows."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    eigenvectors: torch.Tensor | None
    matvecs: int
    steps: int
    converged: bool
    solver: str
    restarts: int = 0  # thick restarts made because the basis was limited to max_rows
    max_rows: int | None = None  # the basis limit when it was below the steps taken


def select_indices(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the wanted values of ``theta``, ordered so ``theta[idx]`` is descending.

    "largest"/"smallest": the k algebraically largest/smallest; "both": k from each end
    (2k values, fewer when they overlap); "magnitude": the k largest |theta|.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    theta = np.asarray(theta, dtype=np.float64)
    k = min(int(k), theta.size)
    asc = np.argsort(theta, kind="stable")
    if which == "largest":
        idx = asc[::-1][:k]
    elif which == "smallest":
        idx = asc[:k]
    elif which == "both":
        idx = np.union1d(asc[::-1][:k], asc[:k])
    else:
        idx = np.argsort(-np.abs(theta), kind="stable")[:k]
    return idx[np.argsort(-theta[idx], kind="stable")]


def relative_residuals(abs_res: np.ndarray, theta: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """abs_res / max(|theta_i|, floor), floor = sqrt(eps(dtype)) * max|theta| (+ tiny).

    The floor lets eigenvalues at ~0 (common for Hessians) be judged against the spectrum's
    scale instead of against themselves, where no precision could satisfy a relative test.
    """
    theta = np.asarray(theta, dtype=np.float64)
    scale = float(np.max(np.abs(theta))) if theta.size else 0.0
    floor = math.sqrt(torch.finfo(dtype).eps) * scale + np.finfo(np.float64).tiny
    return np.abs(np.asarray(abs_res, dtype=np.float64)) / np.maximum(np.abs(theta), floor)


def _random_vector(gen: torch.Generator, P: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    v = torch.randn(P, generator=gen, dtype=torch.float64)
    return (v / v.norm()).to(device=device, dtype=dtype)


def _near(bound: np.ndarray, m: int, last: tuple[int, float] | None,
          tol: float) -> tuple[bool, tuple[int, float]]:
    """Whether to check after every step from now on: when the largest bound, extrapolated at
    its rate since the previous check, would reach tol within 2 * CHECK_EVERY steps (Lanczos
    converges faster than geometrically, so this errs towards checking early)."""
    worst = float(np.max(bound))
    if worst <= tol:
        return True, (m, worst)
    if last is None or not 0 < worst < last[1] or m <= last[0]:
        return False, (m, worst)
    rate = math.log(worst / last[1]) / (m - last[0])  # < 0: log-decrease per step
    return math.log(tol / worst) / rate <= 2 * CHECK_EVERY, (m, worst)


def _too_few(n_want: int, P: int, had: str) -> InputError:
    return InputError(f"the eigensolver needs at least {n_want + 2} vectors of {P} parameters "
                      f"in memory and {had}: free memory, or use a smaller `top_k` or `dtype`")


def lanczos(
    op: SymmetricOperator,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-6,
    max_steps: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    progress: Progress | None = None,
    basis_on_host: bool | None = None,
    max_rows: int | None = None,
    start: torch.Tensor | None = None,
) -> EigResult:
    """k extreme eigenpairs of ``op`` (see :func:`select_indices` for ``which``).

    Runs until every wanted Ritz pair has relative residual bound <= ``tol`` (checked every
    few steps) or until ``max_steps`` steps (default: up to min(P, 500)); ``converged`` says
    which happened, and ``residuals`` are reported either way. With k >= P (or P steps) the
    whole spectrum is returned exactly. The start vector comes from a CPU generator seeded
    with ``seed``, unless ``start`` (P,) is given (normalised here). A start biased towards
    some eigenvectors can let the residual test certify a Ritz pair that is not the wanted
    extreme one (benchmarks/start_vector.py): the random default is the safe one.
    ``progress(matvecs, max_steps)`` is called after every step. The Krylov
    basis grows on the op's device and spills later segments to the host when the GPU runs
    short (:mod:`landscape.linalg.basis`); ``basis_on_host`` True/False forces one place.
    ``max_rows`` bounds the basis (default: what fits in free memory, ``rows_that_fit``);
    a run that needs more restarts thickly within it. Raises InputError when not even k + 2
    rows fit.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if k < 1:
        raise ValueError("k must be >= 1")
    P, dtype, device = int(op.size), op.dtype, torch.device(op.device)
    n_want = min(P, 2 * k if which == "both" else k)
    if max_steps is None:
        cap = min(P, max(DEFAULT_STEP_CAP, 2 * n_want + 20))
    else:
        cap = min(P, max(int(max_steps), 1))
    if max_rows is None:
        max_rows = rows_that_fit(P, dtype, device, reserve_rows=4)
    rows = min(cap, int(max_rows))
    if rows < min(cap, n_want + 2):
        raise _too_few(n_want, P, f"{max(rows, 0)} fit")
    basis = KrylovBasis(P, rows, dtype, device, on_host=basis_on_host)
    eps = torch.finfo(dtype).eps
    gen = torch.Generator().manual_seed(int(seed))

    def fresh() -> torch.Tensor:
        """A random unit vector orthogonal to the basis (after an exhausted Krylov space)."""
        u, _ = basis.orthogonalise(_random_vector(gen, P, dtype, device))
        return u / u.norm()

    alphas: list[float] = []
    betas: list[float] = []  # betas[j] couples v_j and v_{j+1}; 0 at a restart
    if start is None:
        v = _random_vector(gen, P, dtype, device)
    else:
        v = start.detach().reshape(-1).to(device=device, dtype=torch.float64)
        if v.numel() != P or not bool(torch.isfinite(v).all()) or float(v.norm()) == 0.0:
            raise ValueError(f"start must be a finite, non-zero vector of length {P}")
        v = (v / v.norm()).to(dtype)
    anorm, block_start, matvecs = 0.0, 0, 0
    before_block: np.ndarray | None = None  # wanted values before the current block
    converged = near = False
    last: tuple[int, float] | None = None  # (step, largest bound) at the previous check
    beta = 0.0

    while True:
        basis.append(v)
        w = op(v[None])[0].to(dtype)
        matvecs += 1
        w, h = basis.orthogonalise(w)
        m = basis.n
        alpha = float(h[m - 1])
        beta = float(w.norm())
        anorm = max(anorm, abs(alpha) + beta + (betas[-1] if betas else 0.0))
        alphas.append(alpha)
        if progress is not None:
            progress(matvecs, cap)
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            raise NumericalError(f"non-finite value in Lanczos step {m} (operator gave NaN/Inf)")
        breakdown = beta <= 100 * eps * anorm
        block_len = m - block_start
        if breakdown or m == rows or (block_len >= n_want and (near or m % CHECK_EVERY == 0
                                                               or block_len == n_want)):
            theta, S = eigh_tridiagonal(np.array(alphas), np.array(betas))
            idx = select_indices(theta, k, which)
            bound = relative_residuals(beta * S[-1, idx], theta[idx], dtype)
            near, last = _near(bound, m, last, tol)
            if breakdown and m < rows:
                # Exact invariant subspace: the Ritz values are eigenvalues. Once a later
                # block adds nothing to the wanted set, the rest of the space has no
                # eigenvalue that belongs there.
                wanted = theta[idx]
                if before_block is not None and before_block.shape == wanted.shape and \
                        np.allclose(wanted, before_block, rtol=tol, atol=0.0):
                    converged = True
                    break
                before_block = wanted
            elif block_len >= n_want and bool(np.all(bound <= tol)):
                converged = True
                break
        if m == rows:
            break
        if not basis.room():  # free memory ran short before the planned rows: restart here
            if m < n_want + 2:
                raise _too_few(n_want, P, f"free memory ran out at {m}")
            rows = basis.cap = m
            break
        if breakdown:
            v = fresh()
            betas.append(0.0)
            block_start = m
        else:
            betas.append(beta)
            v = w / beta

    m, restarts = basis.n, 0
    theta, S = eigh_tridiagonal(np.array(alphas[:m]), np.array(betas[: m - 1]))
    idx = select_indices(theta, k, which)
    if not converged and m == rows < cap:  # the basis is full: go on restarting within it
        T = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
        theta, S, idx, beta, matvecs, restarts = thick_restart(
            op, basis, T, w, beta, k=k, which=which, tol=tol, cap=cap, matvecs=matvecs,
            new_vector=fresh, progress=progress)
    res = relative_residuals(beta * S[-1, idx], theta[idx], dtype)
    converged = bool(converged or np.all(res <= tol))
    vectors = None
    if return_vectors:
        Y = torch.from_numpy(np.ascontiguousarray(S[:, idx].T)).to(device=device, dtype=dtype)
        vectors = basis.combine(Y)
    return EigResult(
        eigenvalues=theta[idx].astype(np.float64), residuals=res, eigenvectors=vectors,
        matvecs=matvecs, steps=basis.n if restarts else m, converged=converged,
        solver="lanczos", restarts=restarts, max_rows=rows if rows < cap else None,
    )
