"""Spectrum figure: the SLQ density on a log scale with the computed eigenvalues marked.

Drawn from the read-back result file only. With per-layer blocks, one small panel per block
below the whole-model panel. The density is clipped, visibly, at 1% of the height of one
isolated eigenvalue, 1/(P σ √(2π)): SLQ cannot resolve less than that, and the Gaussian tails
below it would otherwise read as a plateau. Without a density the eigenvalues are drawn by rank.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import source_name

RESOLVED = 1e-2  # the floor, as a fraction of one isolated eigenvalue's smoothed height


def _density(ax: Any, spec: dict[str, Any], dens: dict[str, Any], small: bool) -> None:
    grid, values = np.asarray(dens["grid"]), np.asarray(dens["values"])
    sigma = float(dens.get("sigma", math.nan))
    n = float(spec.get("n_params", 0) or 0)
    top = float(values.max()) if values.size else 1.0
    one = 1.0 / (n * sigma * math.sqrt(2 * math.pi)) if n > 0 and sigma > 0 else top * 1e-5
    floor = min(one * RESOLVED, top * 1e-2)
    shown = np.where(values >= floor, values, np.nan)
    ax.fill_between(grid, shown, floor, color="tab:blue", alpha=0.25, lw=0)
    ax.plot(grid, shown, color="tab:blue", lw=1.0, label=f"SLQ density (σ={sigma:.2g})")
    clipped = values < floor
    if clipped.any():
        ax.fill_between(
            grid, floor, floor * 1.6, where=clipped, color="0.6", alpha=0.5, lw=0, step="mid",
            hatch="///", label=f"below {floor:.1g}: not resolved, clipped",
        )
    ax.axhline(one, color="tab:green", ls="--", lw=0.8, label="one eigenvalue: 1/(Pσ√(2π))")
    ax.set_yscale("log")
    ax.set_ylim(floor, top * 3)
    edge = spec.get("bulk_edge")
    if edge is not None and not small:
        ax.axvline(edge, color="0.4", ls=":", lw=1.0, label=f"bulk edge {edge:.3g}")
    ax.set_ylabel("density (log)", fontsize=8 if small else None)


def _by_rank(ax: Any, eig: np.ndarray, solver: str, small: bool) -> None:
    rank = np.arange(1, eig.size + 1)
    ax.hlines(rank, 0.0, eig, color="tab:red", lw=1.2)
    ax.plot(eig, rank, "o", color="tab:red", ms=5 if small else 6,
            label=f"eigenvalues ({eig.size}, {solver}; no density computed)")
    low, high = min(0.0, float(eig.min())), max(0.0, float(eig.max()))
    pad = 0.05 * (high - low or 1.0)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(eig.size + 0.7, 0.3)
    if eig.size <= 12:
        ax.set_yticks(rank)
    ax.set_ylabel("rank (1 = largest)", fontsize=8 if small else None)


def _panel(ax: Any, part: dict[str, Any], title: str, small: bool = False) -> None:
    spec, dens = part.get("spectrum", {}), part.get("density")
    eig = np.atleast_1d(np.asarray(spec.get("eigenvalues", []), dtype=float))
    solver = spec.get("solver", "")
    if dens is not None:
        _density(ax, spec, dens, small)
        for i, lam in enumerate(eig):
            label = f"eigenvalues ({len(eig)}, {solver})" if i == 0 else None
            ax.axvline(lam, color="tab:red", lw=0.9, alpha=0.8, label=label)
    elif eig.size:
        _by_rank(ax, eig, solver, small)
    ax.axvline(0.0, color="k", lw=0.5, alpha=0.5)
    ax.set_title(title, fontsize=9 if small else 11)
    ax.tick_params(labelsize=7 if small else 9)
    ax.set_xlabel("eigenvalue", fontsize=8 if small else None)
    if not small:
        ax.legend(fontsize=8, loc="upper right", framealpha=0.9)


def _headline(content: dict[str, Any]) -> str:
    spec = content.get("spectrum", {})
    parts = [f"λ_max {spec.get('lambda_max', math.nan):.4g}"]
    if spec.get("lambda_min") is not None:
        parts.append(f"λ_min {spec['lambda_min']:.3g} ({spec.get('lambda_min_from', '')})")
    else:
        parts.append("λ_min not estimated")
    conf = f"{100 * float(spec.get('confidence', 0.95)):g}% CI"
    if spec.get("trace") is not None:
        half = spec.get("trace_ci_high")
        pm = f" ± {half - spec['trace']:.2g} ({conf})" if half is not None else ""
        parts.append(f"trace {spec['trace']:.4g}{pm}")
    if spec.get("negative_mass") is not None:
        lo, hi = spec.get("negative_mass_ci_low"), spec.get("negative_mass_ci_high")
        ci = f" ({conf} [{lo:.2g}, {hi:.2g}])" if lo is not None and hi is not None else ""
        parts.append(f"neg. mass {spec['negative_mass']:.3g}{ci}")
    return "   ".join(parts[:2]) + ("\n" + "   ".join(parts[2:]) if len(parts) > 2 else "")


def plot(content: dict[str, Any], path: str) -> None:
    """Draw the density and eigenvalues of a spectrum result into ``path``."""
    import matplotlib.pyplot as plt

    blocks = content.get("blocks") or {}
    ncols = min(3, len(blocks)) if blocks else 1
    nrows = math.ceil(len(blocks) / ncols) if blocks else 0
    fig = plt.figure(figsize=(9, 4.2 + 2.6 * nrows), layout="constrained")
    grid = fig.add_gridspec(1 + nrows, ncols, height_ratios=[1.8] + [1] * nrows)
    curvature = content.get("curvature") or content.get("spectrum", {}).get("curvature", "")
    title = (
        f"{curvature} spectrum of {source_name(content)} ({content.get('model', '')}, "
        f"{content.get('n_params', '?')} params)\n{_headline(content)}"
    )
    _panel(fig.add_subplot(grid[0, :]), content, title)
    for i, (name, part) in enumerate(blocks.items()):
        ax = fig.add_subplot(grid[1 + i // ncols, i % ncols])
        n = part.get("spectrum", {}).get("n_params", "?")
        _panel(ax, part, f"{name} ({n} params)", small=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
