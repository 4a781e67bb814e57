"""Thick-restart Lanczos: extreme eigenpairs when the Krylov basis cannot grow to convergence.

When only R basis vectors fit in memory (one vector of GPT-2 small is 0.5 GB), the run keeps the
l best Ritz vectors Y = S_lᵀ V of the full basis and goes on from the next Lanczos vector
v_{m+1} (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric eigenvalue
problems", SIAM J. Matrix Anal. Appl. 22). Since A V = V T + β v_{m+1} e_mᵀ,

    A Y = Y Θ_l + β v_{m+1} s_lᵀ,   s_l = the last row of S_l,

so [Y, v_{m+1}, ...] spans a Krylov-like space whose projection is diag(Θ_l) bordered by the
couplings β s_l, then tridiagonal. It is kept dense here, T = Vᵀ A V: each new column is read
from the coefficients h = Vᵀ A v of the full reorthogonalisation, and a Ritz pair's residual
stays |β_last S[last, i]|. About half the basis is kept at each restart (l ≈ (R + k) / 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from landscape.errors import NumericalError
from landscape.linalg.basis import KrylovBasis
from landscape.linalg.operator import SymmetricOperator

__all__ = ["thick_restart", "kept_count"]

Progress = Callable[[int, "int | None"], None]


def kept_count(rows: int, n_want: int) -> int:
    """Ritz vectors kept at a restart of a basis of ``rows``: about half, at least the wanted."""
    return max(n_want, min(rows - 2, (rows + n_want) // 2))


def _chosen(theta: np.ndarray, keep: int, which: str, select: Callable) -> np.ndarray:
    """Indices of the ``keep`` Ritz values nearest the wanted end(s) (a superset of the wanted)."""
    if which == "both":
        return select(theta, math.ceil(keep / 2), which)
    return select(theta, keep, which)


def thick_restart(
    op: SymmetricOperator,
    basis: KrylovBasis,
    T: np.ndarray,
    w: torch.Tensor,
    beta: float,
    *,
    k: int,
    which: str,
    tol: float,
    cap: int,
    matvecs: int,
    new_vector: Callable[[], torch.Tensor],
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, int]:
    """Continue a Lanczos run whose full basis (``basis.n`` = ``basis.cap`` rows, projection
    ``T``, remainder ``w`` of norm ``beta``) has not converged, restarting as often as needed
    until every wanted residual bound is <= ``tol`` or ``cap`` products are spent.

    Args:
        op: the symmetric operator.
        basis: the full basis; it is rotated in place.
        T: its projection Vᵀ A V (dense, n × n).
        w: the last product's orthogonalised remainder; ``beta`` its norm (0 at a breakdown).
        k, which, tol: as for :func:`~landscape.linalg.lanczos.lanczos`.
        cap: the most products in all; ``matvecs`` those spent so far.
        new_vector: a fresh unit vector orthogonal to the basis (after an exhausted space).
        progress: ``progress(matvecs, cap)`` after every product.

    Returns:
        (theta, S, wanted indices, beta, matvecs, restarts) of the final projection;
        ``beta * S[-1]`` are the residuals."""
    from landscape.linalg.lanczos import relative_residuals, select_indices

    rows, dtype = basis.cap, basis.dtype
    n_want = min(basis.P, 2 * k if which == "both" else k)
    keep = kept_count(rows, n_want)
    eps = torch.finfo(dtype).eps
    anorm = float(np.max(np.abs(T))) if T.size else 0.0
    restarts = 0
    while True:
        theta, S = np.linalg.eigh(T)
        idx = select_indices(theta, k, which)
        bound = relative_residuals(beta * S[-1, idx], theta[idx], dtype)
        if np.all(bound <= tol) or matvecs >= cap:
            return theta, S, idx, beta, matvecs, restarts
        if basis.n == rows:
            chosen = _chosen(theta, keep, which, select_indices)
            basis.rotate(torch.from_numpy(np.ascontiguousarray(S[:, chosen])))
            T = np.diag(theta[chosen])
            restarts += 1
        v = w / beta if beta > 100 * eps * anorm else new_vector()
        basis.append(v)
        w = op(v[None])[0].to(dtype)
        matvecs += 1
        w, h = basis.orthogonalise(w)
        n = basis.n
        col = h.double().cpu().numpy()
        grown = np.zeros((n, n))
        grown[: n - 1, : n - 1] = T
        grown[:, n - 1] = col
        grown[n - 1, :] = col
        T = grown
        beta = float(w.norm())
        if not (np.all(np.isfinite(col)) and math.isfinite(beta)):
            raise NumericalError(f"non-finite value in Lanczos product {matvecs} "
                                 "(operator gave NaN/Inf)")
        anorm = max(anorm, float(np.abs(col).sum()) + beta)
        if progress is not None:
            progress(matvecs, cap)
