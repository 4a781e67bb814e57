"""Statistics read off a spectral density or its Gauss quadrature (for ``spectrum``).

Bulk edge: walking right from the density's mode, the first x where φ(x) drops below half the
smoothed height of one isolated eigenvalue, 1/(2 P σ √(2π)). Mass below x: per SLQ run, the midpoint
of the Chebyshev-Markov-Stieltjes bracket on the true spectral measure (Golub & Meurant 2010, 6.3).
"""

from __future__ import annotations

import math

import numpy as np


def bulk_edge(grid: np.ndarray, values: np.ndarray, n_params: int, sigma: float) -> float:
    """Right end of the connected region around the density's mode where φ >= 1/(2Pσ√(2π))."""
    threshold = 0.5 / (n_params * sigma * math.sqrt(2 * math.pi))
    i = int(np.argmax(values))
    below = np.nonzero(values[i:] < threshold)[0]
    return float(grid[-1] if below.size == 0 else grid[i + below[0]])


def mass_below(
    nodes: np.ndarray,
    weights: np.ndarray,
    x: float,
    zero: float = 0.0,
    exact: np.ndarray | None = None,
) -> float:
    """The mean over runs of :func:`mass_below_runs`."""
    return float(np.mean(mass_below_runs(nodes, weights, x, zero, exact)))


def mass_below_runs(
    nodes: np.ndarray,
    weights: np.ndarray,
    x: float,
    zero: float = 0.0,
    exact: np.ndarray | None = None,
) -> np.ndarray:
    """SLQ estimates of the spectral mass below x < 0, one per run: the midpoint of
    the Chebyshev-Markov-Stieltjes bracket [S - w_k, S + w_(k+1)] (Golub & Meurant 2010, 6.3),
    S the weight of the nodes < x, w_k the last of them, w_(k+1) the next node's unless that
    node is numerically zero (|θ| <= zero: it stands for the null space); S alone for ``exact``
    runs (Krylov space exhausted, so the quadrature is the run's true measure). One value per
    run, so their spread gives the estimate's uncertainty."""
    out = []
    for r, (q, w) in enumerate(zip(nodes, weights)):
        order = np.argsort(q[w > 0], kind="stable")
        q, w = q[w > 0][order], w[w > 0][order]
        k = int(np.searchsorted(q, x))
        below = float(w[:k].sum())
        if exact is None or not exact[r]:
            above = w[k] if k < w.size and abs(q[k]) > zero else 0.0
            below += (above - (w[k - 1] if k > 0 else 0.0)) / 2
        out.append(below)
    return np.asarray(out, dtype=np.float64)
