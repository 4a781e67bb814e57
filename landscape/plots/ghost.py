"""Figure of a ``ghost`` result: the loss along τv with ρ_a and τ_H, and the per-sample spreads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import source_name


def _mark(ax: Any, x: Any, top: float, **kw: Any) -> None:
    if x is not None and math.isfinite(float(x)) and 0 < float(x) <= top:
        ax.axvline(float(x), **kw)


def plot(content: dict[str, Any], path: str) -> None:
    """Left: L(θ + τv) for τ in [0, a few ρ_a], radii and steps marked. Right: spread histogram."""
    import matplotlib.pyplot as plt

    g = content["ghost"]
    tau = np.asarray(g["curve"]["tau"])
    loss = np.asarray(g["curve"]["loss"])
    top = float(tau[-1]) if len(tau) else 1.0
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    rho = float(g["rho_a"])
    ax.plot(tau, loss, "o-", ms=3, color="tab:blue", label="L(θ + τv)")
    if math.isfinite(rho):
        ax.axvspan(0, min(rho, top), color="tab:green", alpha=0.08)
    _mark(ax, rho, top, color="tab:red", lw=1.6, label=f"ρ_a = π/maxΔ = {rho:.4g}")
    if "rho_exact" in g:
        label = f"ρ* = {g['rho_exact']:.4g} (exact, 2 classes)"
        _mark(ax, g["rho_exact"], top, color="tab:purple", ls="--", label=label)
    else:
        label = f"ρ top-2 = {g['rho_top2']:.4g} (estimate)"
        _mark(ax, g["rho_top2"], top, color="tab:purple", ls=":", label=label)
    steps = [("tau_hessian", "τ_H = 2/vᵀHv", "tab:orange", "--")]
    if "tau" in g:
        steps.append(("tau", f"step τ (r = {g['r']:.3g})", "k", "-."))
    for key, name, color, ls in steps:
        x = float(g[key])
        if 0 < x <= top:
            ax.axvline(x, color=color, ls=ls, label=f"{name} = {x:.4g}")
        else:
            ax.plot([], [], " ", label=f"{name} = {x:.3g} (off the axis)")
    ax.set_xlabel("τ (distance along the unit direction v)")
    ax.set_ylabel("loss")
    ax.set_title(f"loss along v = {g.get('direction', '')}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    spread = np.asarray(g["spread"])
    bx.hist(spread, bins=min(50, max(5, len(spread) // 10)), color="tab:blue", alpha=0.8)
    bx.set_yscale("log")
    bx.axvline(float(np.max(spread)), color="tab:red", label=f"max Δ_a = {np.max(spread):.4g}")
    if "rho_quantile" in g:
        q = math.pi / float(g["rho_quantile"])
        bx.axvline(q, color="0.4", ls="--", label=f"q={g['quantile']:.3g} quantile (not a bound)")
    bx.set_xlabel("Δ_a(x) = max_k a_k − min_k a_k")
    bx.set_ylabel("samples")
    bx.set_title(f"per-sample logit-slope spread ({len(spread)} samples)", fontsize=10)
    bx.legend(fontsize=8)
    fig.suptitle(f"ghost-of-softmax radius, {source_name(content)} ({content.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
