"""The ``blocks`` figure: the groups' SLQ densities overlaid (log scale) on their common grid,
and the pairwise Jensen–Shannon distances as a heat map. Drawn from the result file only."""

from __future__ import annotations

from typing import Any

import numpy as np

FLOOR = 1e-7  # densities are shown down to this fraction of the highest peak


def _names(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def plot(content: dict[str, Any], path: str) -> None:
    """Draw a blockwise result into ``path``."""
    import matplotlib.pyplot as plt

    b = content["blockwise"]
    names = _names(b["names"])
    grid, dens = np.asarray(b["grid"]), np.atleast_2d(np.asarray(b["densities"]))
    lam, js = np.atleast_1d(b["lambda_max"]), np.atleast_2d(np.asarray(b["js_distance"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained",
                                      gridspec_kw={"width_ratios": [1.6, 1]})
    floor = float(dens.max()) * FLOOR
    for name, d, top in zip(names, dens, lam):
        left.plot(grid, np.maximum(d, floor), lw=1.0, label=f"{name} (λ_max {float(top):.3g})")
    left.set_yscale("log")
    left.set_ylim(floor, float(dens.max()) * 3)
    left.axvline(0.0, color="k", lw=0.5, alpha=0.5)
    left.set_xlabel("eigenvalue")
    left.set_ylabel("density (log)")
    left.set_title(f"{b.get('curvature', '')} diagonal-block spectra of {content.get('model', '')}"
                   f" (σ={float(b.get('sigma', np.nan)):.2g})", fontsize=10)
    left.legend(fontsize=8, loc="upper right", framealpha=0.9)
    image = right.imshow(js, vmin=0.0, vmax=1.0, cmap="viridis")
    right.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    right.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            right.text(j, i, f"{js[i, j]:.2f}", ha="center", va="center", fontsize=7,
                       color="w" if js[i, j] < 0.6 else "k")
    right.set_title("Jensen–Shannon distance between block spectra", fontsize=10)
    fig.colorbar(image, ax=right, shrink=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
