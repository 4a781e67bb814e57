"""Figure of an ``inspect`` result: each parameter block's norm and gradient norm."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import source_name


def plot(content: dict[str, Any], path: str) -> None:
    """Horizontal bars per block, θ's order top to bottom: ‖θ_block‖ (left) and ‖∇_block L‖
    (right), each value written at its bar's end; the block's parameter count labels it."""
    import matplotlib.pyplot as plt

    g = content["inspect"]
    layers = g["layers"]
    names = [str(n) for n in np.atleast_1d(layers["names"])]
    counts = np.atleast_1d(layers["counts"])
    norms = np.atleast_1d(np.asarray(layers["norms"], dtype=float))
    grads = np.atleast_1d(np.asarray(layers["grad_norms"], dtype=float))
    labels = [f"{n} ({int(c):,})" for n, c in zip(names, counts)]
    y = np.arange(len(names))
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(11, 1.4 + 0.35 * max(len(names), 3)), sharey=True
    )
    panels = [
        (ax, norms, "tab:blue", "‖θ_block‖₂", f"parameter norm (all: {g['param_norm']:.4g})"),
        (bx, grads, "tab:orange", "‖∇_block L‖₂", f"gradient norm (all: {g['grad_norm']:.4g})"),
    ]
    for a, values, color, xlabel, title in panels:
        a.barh(y, values, color=color)
        for i, v in zip(y, values):
            a.text(v, i, f" {v:.3g}", va="center", fontsize=8)
        a.set_xlim(0, 1.18 * max(float(np.nanmax(values)) if len(values) else 0, 1e-30))
        a.set_xlabel(xlabel)
        a.set_title(title, fontsize=10)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    for a in (ax, bx):
        a.grid(axis="x", alpha=0.3)
    acc = g.get("accuracy")
    extra = f", accuracy {float(acc):.4g}" if acc is not None and np.isfinite(acc) else ""
    fig.suptitle(f"per-block norms, {source_name(content)}: loss {float(g['loss']):.4g}{extra}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
