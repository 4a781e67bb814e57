"""The ``trace`` figure: the estimate and its confidence band against matvecs spent; per-layer
traces as bars with their confidence half-widths; the estimated diagonal when it was saved."""

from __future__ import annotations

from typing import Any

import numpy as np


def _history(ax: Any, t: dict[str, Any]) -> None:
    h = t["history"]
    x = np.atleast_1d(h["matvecs"]).astype(float)
    y = np.atleast_1d(h["estimate"]).astype(float)
    half = np.atleast_1d(h["half_width"]).astype(float)
    pct = f"{100 * float(t['confidence']):g}%"
    if x.size > 1:
        ax.fill_between(
            x,
            y - half,
            y + half,
            color="tab:blue",
            alpha=0.25,
            lw=0,
            label=f"{pct} confidence band",
        )
        ax.plot(
            x, y, color="tab:blue", lw=1.5, marker="o" if x.size < 20 else None, label="estimate"
        )
        if x.max() / max(x.min(), 1) > 20:
            ax.set_xscale("log")
    else:
        ax.errorbar(
            x, y, yerr=half, fmt="o", color="tab:blue", capsize=6, label=f"estimate ± {pct}"
        )
    est = float(t["estimate"])
    ax.axhline(est, color="0.3", ls="--", lw=1, label=f"final {est:.5g}")
    if "rtol" in t:
        tol = float(t["rtol"]) * abs(est)
        for sign in (-1, 1):
            ax.axhline(
                est + sign * tol,
                color="tab:red",
                ls=":",
                lw=1,
                label="final ± rtol·|final|" if sign > 0 else None,
            )
    ax.set_xlabel("matvecs spent")
    ax.set_ylabel(f"tr({t.get('curvature', 'C')})")
    title = f"{t['method']}: {est:.5g} ± {float(t['ci_high']) - est:.3g}  (stopped: {t['stopped']})"
    if "rtol" in t:
        title += f", rtol {float(t['rtol']):g}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def _layers(ax: Any, content: dict[str, Any]) -> None:
    t = content["trace"]
    names = list(t["per_layer"]["names"])
    blocks = content["blocks"]
    est = np.array([float(blocks[n]["trace"]["estimate"]) for n in names])
    half = np.array([float(blocks[n]["trace"]["ci_high"]) - e for n, e in zip(names, est)])
    pos = np.arange(len(names))
    ax.bar(pos, est, yerr=half, capsize=4, color="tab:orange", edgecolor="0.2", lw=0.5)
    ax.axhline(0, color="0.2", lw=0.8)
    ax.set_xticks(pos)
    ax.set_xticklabels(
        names,
        rotation=45 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
        fontsize=8,
    )
    pl = t["per_layer"]
    ax.set_title(
        f"per layer: sum {float(pl['sum']):.5g} ± {float(pl['sum_stderr']):.2g} "
        f"(z = {float(pl['z']):+.2f} vs whole)",
        fontsize=10,
    )
    ax.set_ylabel("trace of the diagonal block")
    ax.grid(axis="y", alpha=0.3)


def _diagonal(ax: Any, t: dict[str, Any]) -> None:
    d = np.asarray(t["diagonal"], dtype=float)
    se = np.asarray(t["diagonal_stderr"], dtype=float)
    idx = np.arange(d.size)
    ax.fill_between(
        idx,
        d - 2 * se,
        d + 2 * se,
        color="tab:green",
        alpha=0.25,
        lw=0,
        step="mid",
        label="± 2 stderr",
    )
    ax.plot(idx, d, color="tab:green", lw=0.8, drawstyle="steps-mid", label="diag estimate")
    ax.set_xlabel("parameter index (θ order)")
    ax.set_ylabel("diagonal entry")
    method = t.get("diagonal_method", "")  # files written before it was recorded lack it
    ax.set_title(f"diagonal ({method + ', ' if method else ''}{d.size} entries)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot(content: dict[str, Any], path: str) -> None:
    """Draw the figure of a read-back ``trace`` result into ``path``."""
    import matplotlib.pyplot as plt

    t = content["trace"]
    t.setdefault("curvature", content.get("curvature", "C"))
    panels = [_history]
    if "per_layer" in t and "blocks" in content:
        panels.append(_layers)
    if "diagonal" in t:
        panels.append(_diagonal)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        panel(ax, content if panel is _layers else t)
    fig.suptitle(
        f"{content.get('model', '')} · {content.get('n_params', '')} params · "
        f"{content.get('matvecs', '')} matvecs in all",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
