"""The lmc figure: loss and accuracy against α (train and eval) with the barrier drawn as the
gap to the line between the endpoint values and each endpoint's own value as saved (hollow
diamonds); per-layer barriers; the pairwise heat map."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _curve(ax, alpha: np.ndarray, y: np.ndarray, label: str, color: str, worst: str) -> None:  # noqa: ANN001
    """One curve, its endpoint line (dashed) and the largest gap to it (arrow, labelled)."""
    line = (1 - alpha) * y[0] + alpha * y[-1]
    gap = y - line if worst == "max" else line - y
    k = int(np.argmax(gap))
    ax.plot(alpha, y, "o-", color=color, ms=3, label=label)
    ax.plot([0, 1], [y[0], y[-1]], "--", color=color, lw=1, alpha=0.6)
    if gap[k] > 0:
        ax.annotate("", xy=(alpha[k], y[k]), xytext=(alpha[k], line[k]),
                    arrowprops={"arrowstyle": "<->", "color": color, "lw": 1.2})  # fmt: skip
        ax.annotate(f"{gap[k]:.3g}", (alpha[k], (y[k] + line[k]) / 2), xytext=(5, 0),
                    textcoords="offset points", color=color, fontsize=8, va="center")  # fmt: skip


def _own(ax, values: object, color: str, label: str) -> None:  # noqa: ANN001
    """Each endpoint's own value as saved (own buffers, no reset): hollow diamonds at α = 0, 1."""
    if values is None:
        return
    v = np.asarray(values, float)[:2]
    ax.plot([0.0, 1.0][: len(v)], v, "D", mfc="none", mec=color, ms=7, mew=1.4, ls="none",
            label=f"{label}: A, B as saved")  # fmt: skip


def plot(content: dict[str, Any], path: str) -> None:
    """Draw the figure of a read-back ``lmc`` result into ``path``."""
    import matplotlib.pyplot as plt

    g = content["lmc"]
    alpha = np.asarray(g["alpha"], float)
    panels = ["loss"] + (["accuracy"] if "accuracy" in g else [])
    panels += (["layers"] if g.get("layers") else []) + (["pairwise"] if g.get("pairwise") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    names = [os.path.basename(str(n)) for n in np.atleast_1d(g.get("checkpoints", []))]
    title = f"{names[0]} → {names[1]}" if len(names) >= 2 else "A → B"
    for ax, panel in zip(axes[0], panels):
        if panel in ("loss", "accuracy"):
            worst = "max" if panel == "loss" else "min"
            _curve(ax, alpha, np.asarray(g[panel]), "train", "tab:blue", worst)
            _own(ax, g.get(f"own_{panel}"), "tab:blue", "train")
            if f"eval_{panel}" in g:
                _curve(ax, alpha, np.asarray(g[f"eval_{panel}"]), "eval", "tab:orange", worst)
                _own(ax, g.get(f"eval_own_{panel}"), "tab:orange", "eval")
            ax.set_xlabel("α   (θ = (1−α)θ_A + αθ_B)")
            ax.set_ylabel(panel)
            key = "barrier_loss" if panel == "loss" else "barrier_accuracy"
            what = "loss" if panel == "loss" else "error"
            ax.set_title(f"{what} barrier {g[key]:.3g} (vs endpoint line)", fontsize=10)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        elif panel == "layers":
            colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
            for i, (name, layer) in enumerate(g["layers"].items()):
                c = colors[i % len(colors)]
                for base, style in (("a", "-"), ("b", "--")):
                    y = np.asarray(layer[f"loss_rest_{base}"])
                    bar = layer[f"barrier_loss_rest_{base}"]
                    ax.plot(np.linspace(0, 1, len(y)), y, style, color=c,
                            label=f"{name}, rest at {base.upper()}: barrier {bar:.3g}")  # fmt: skip
            every = np.concatenate([np.asarray(v[f"loss_rest_{b}"]) for v in g["layers"].values()
                                    for b in "ab"])  # fmt: skip
            if every.min() > 0 and every.max() / every.min() > 10:
                ax.set_yscale("log")
            ax.set_xlabel("α of the one interpolated layer")
            ax.set_ylabel("loss")
            ax.set_title("layer-wise (solid: rest at A, dashed: rest at B)", fontsize=10)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        else:
            m = np.asarray(g["pairwise"]["barrier_loss"])
            im = ax.imshow(m, cmap="viridis")
            short = names if len(names) == len(m) else [str(i) for i in range(len(m))]
            ax.set_xticks(range(len(m)), short, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(len(m)), short, fontsize=7)
            for i in range(len(m)):
                for j in range(len(m)):
                    text = f"{m[i, j]:.3g}" if abs(m[i, j]) > 1e-12 else "0"
                    color = "w" if m[i, j] < m.max() / 2 else "k"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_title("pairwise loss barrier", fontsize=10)
    how = f"buffers: {g.get('bn', '?')}" + (", B aligned by weight matching"
                                            if g.get("align") == "weights" else "")  # fmt: skip
    fig.suptitle(f"linear mode connectivity: {title}   ({how})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
