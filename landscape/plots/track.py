"""The ``track`` figure: one panel per tracked quantity against the training step; the trace
with its ±1.96·stderr band, the stability threshold on λ_max's panel (a step line where it
follows each checkpoint's own lr), and 1 on the panels of ratios (eos_ratio, ghost r) whose
crossing means instability."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PANELS = [("loss", "loss"), ("accuracy", "accuracy"), ("grad_norm", "‖∇L‖"),
          ("lambda_max", "λ_max"), ("trace", "tr(H)"), ("directional", "uᵀHu/‖u‖² (update)"),
          ("ghost_radius", "ghost radius ρ_a"), ("ghost_r", "r = τ/ρ_a"),
          ("eos_ratio", "λ_max (Adam: preconditioned) / threshold")]


def plot(content: dict[str, Any], path: str) -> None:
    import matplotlib.pyplot as plt

    t = content["track"]
    x = np.atleast_1d(t["step"]).astype(float)
    panels = [(k, label) for k, label in PANELS if k in t]
    cols = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        y = np.atleast_1d(t[key]).astype(float)
        ax.plot(x, y, marker="o", ms=3, color="tab:blue")
        if key == "trace" and "trace_stderr" in t:
            half = 1.96 * np.atleast_1d(t["trace_stderr"]).astype(float)
            ax.fill_between(x, y - half, y + half, color="tab:blue", alpha=0.2, lw=0,
                            label="95% interval")
            ax.legend(fontsize=7)
        if key == "lambda_max" and "threshold" in t:
            ax.axhline(float(t["threshold"]), color="tab:red", ls="--", lw=1,
                       label=f"stability threshold {float(t['threshold']):.4g}")
            ax.legend(fontsize=7)
            if np.nanmax(y) > 0 and float(t["threshold"]) / np.nanmax(y) > 20:
                ax.set_yscale("log")  # keep the curve readable below a far threshold
        if key == "lambda_max" and "eos_threshold" in t:  # each checkpoint's own lr
            limit = np.atleast_1d(t["eos_threshold"]).astype(float)
            shown = np.where(np.isfinite(limit), limit, np.nan)  # lr 0: no threshold to draw
            ax.step(x, shown, where="post", color="tab:red", ls="--", lw=1,
                    label="stability threshold at each checkpoint's lr")
            ax.legend(fontsize=7)
            top = np.nanmax(shown) if np.isfinite(shown).any() else np.nan
            if np.nanmax(y) > 0 and top / np.nanmax(y) > 20:
                ax.set_yscale("log")
        if key in ("eos_ratio", "ghost_r"):
            ax.axhline(1.0, color="tab:red", ls="--", lw=1, label="1 (stability edge)")
            ax.legend(fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"step ({t.get('step_source', 'name')})", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"track: {len(x)} checkpoints", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
