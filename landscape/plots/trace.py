"""The ``trace`` figure: the estimate and its confidence band against matvecs spent; per-layer
traces as bars with their confidence half-widths; the estimated diagonal when it was saved."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import source_name


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
        _one_run(ax, t, pct)
        return
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
    title = _title(t, pct)
    if "rtol" in t:
        title += f", rtol {float(t['rtol']):g}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def _title(t: dict[str, Any], pct: str) -> str:
    est = float(t["estimate"])
    half = float(t["ci_high"]) - est
    return f"{t['method']}: {est:.5g} ± {half:.3g} ({pct} CI)  (stopped: {t['stopped']})"


def _one_run(ax: Any, t: dict[str, Any], pct: str) -> None:
    """One run (no history to draw): its per-probe estimates, whose mean is the estimate,
    with the estimate's confidence band."""
    est, low, high = float(t["estimate"]), float(t["ci_low"]), float(t["ci_high"])
    samples = np.atleast_1d(np.asarray(t.get("samples", []), dtype=float))
    matvecs = int(np.atleast_1d(t["history"]["matvecs"])[-1])
    if samples.size:
        idx = np.arange(1, samples.size + 1)
        ax.plot(idx, samples, "o", ms=3, color="0.45", alpha=0.8,
                label=f"per-probe estimates ({samples.size})")
        ax.set_xlim(0, samples.size + 1)
        ax.set_xlabel(f"probe (one run, {matvecs} matvecs)")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"exact: {matvecs} unit vectors")
    if high > low:
        ax.axhspan(low, high, color="tab:blue", alpha=0.3, lw=0,
                   label=f"{pct} CI of the estimate [{low:.4g}, {high:.4g}]")
    ax.axhline(est, color="tab:blue", lw=1.5, label=f"estimate {est:.5g} (their mean)")
    ax.set_ylabel(f"tr({t.get('curvature', 'C')})")
    ax.set_title(_title(t, pct), fontsize=10)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.4 * (top - bottom))  # room for the legend above the points
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)


def _layers(ax: Any, content: dict[str, Any]) -> None:
    t = content["trace"]
    names = list(t["per_layer"]["names"])
    blocks = content["blocks"]
    est = np.array([float(blocks[n]["trace"]["estimate"]) for n in names])
    half = np.array([float(blocks[n]["trace"]["ci_high"]) - e for n, e in zip(names, est)])
    pos = np.arange(len(names))
    pct = f"{100 * float(t['confidence']):g}%"
    ax.bar(pos, est, yerr=half, capsize=4, color="tab:orange", edgecolor="0.2", lw=0.5,
           label=f"block trace, bars: {pct} CI")
    ax.legend(fontsize=8)
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
        f"per layer: sum {float(pl['sum']):.5g} (s.e. {float(pl['sum_stderr']):.2g}) "
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
        label="± 2 s.e.",
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
        f"trace of {source_name(content)} ({content.get('model', '')}) · "
        f"{content.get('n_params', '')} params · "
        f"{content.get('matvecs', '')} matvecs in all",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
