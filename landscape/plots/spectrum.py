"""Spectrum figure: the SLQ density on a log scale with the computed eigenvalues marked.

Drawn from the read-back result file only. With per-layer blocks, one small panel per block
below the whole-model panel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLOOR = 1e-7  # the log axis shows densities down to this fraction of the peak


def _panel(ax: Any, part: dict[str, Any], title: str, small: bool = False) -> None:
    spec, dens = part.get("spectrum", {}), part.get("density")
    eig = np.atleast_1d(np.asarray(spec.get("eigenvalues", []), dtype=float))
    if dens is not None:
        grid, values = np.asarray(dens["grid"]), np.asarray(dens["values"])
        top = float(values.max()) if values.size else 1.0
        ax.fill_between(
            grid, np.maximum(values, top * FLOOR), top * FLOOR, color="tab:blue", alpha=0.25, lw=0
        )
        ax.plot(
            grid,
            np.maximum(values, top * FLOOR),
            color="tab:blue",
            lw=1.0,
            label=f"SLQ density (σ={dens.get('sigma', math.nan):.2g})",
        )
        ax.set_yscale("log")
        ax.set_ylim(top * FLOOR, top * 3)
        edge = spec.get("bulk_edge")
        if edge is not None and not small:
            ax.axvline(edge, color="0.4", ls=":", lw=1.0, label=f"bulk edge {edge:.3g}")
    else:
        ax.set_yticks([])
        ax.text(
            0.02,
            0.95,
            "no density (--no-density)",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="0.4",
        )
    for i, lam in enumerate(eig):
        ax.axvline(
            lam,
            color="tab:red",
            lw=0.9,
            alpha=0.8,
            label=f"eigenvalues ({len(eig)}, {spec.get('solver', '')})" if i == 0 else None,
        )
    ax.axvline(0.0, color="k", lw=0.5, alpha=0.5)
    ax.set_title(title, fontsize=9 if small else 11)
    ax.tick_params(labelsize=7 if small else 9)
    if not small:
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (log)")
        ax.legend(fontsize=8, loc="upper right", framealpha=0.9)


def _headline(content: dict[str, Any]) -> str:
    spec = content.get("spectrum", {})
    parts = [
        f"λ_max {spec.get('lambda_max', math.nan):.4g}",
        f"λ_min {spec.get('lambda_min', math.nan):.3g}",
    ]
    if spec.get("trace") is not None:
        parts.append(f"trace {spec['trace']:.4g}")
    if spec.get("negative_mass") is not None:
        parts.append(f"neg. mass {spec['negative_mass']:.3g}")
    return "   ".join(parts)


def plot(content: dict[str, Any], path: str) -> None:
    """Draw the density and eigenvalues of a spectrum result into ``path``."""
    import matplotlib.pyplot as plt

    blocks = content.get("blocks") or {}
    ncols = min(3, len(blocks)) if blocks else 1
    nrows = math.ceil(len(blocks) / ncols) if blocks else 0
    fig = plt.figure(figsize=(9, 4.2 + 2.4 * nrows), layout="constrained")
    grid = fig.add_gridspec(1 + nrows, ncols, height_ratios=[1.8] + [1] * nrows)
    curvature = content.get("curvature") or content.get("spectrum", {}).get("curvature", "")
    title = (
        f"{curvature} spectrum of {content.get('model', '')} "
        f"({content.get('n_params', '?')} params)\n{_headline(content)}"
    )
    _panel(fig.add_subplot(grid[0, :]), content, title)
    for i, (name, part) in enumerate(blocks.items()):
        ax = fig.add_subplot(grid[1 + i // ncols, i % ncols])
        n = part.get("spectrum", {}).get("n_params", "?")
        _panel(ax, part, f"{name} ({n} params)", small=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
