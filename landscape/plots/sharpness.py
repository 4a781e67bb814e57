"""Figure of a ``sharpness`` result: directional sharpness beside λ_max, and the quadratic model."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import source_name


def _bars(ax: Any, g: dict[str, Any]) -> None:
    d = g.get("directional", {})
    names = [n for n in ("gradient", "update", "top_eigenvector", "file") if n in d]
    values = [float(d[n]) for n in names]
    errors = [0.0] * len(names)
    if "random_mean" in d:
        names.append(f"random (mean of {np.size(d['random'])};\nbar: std across them)")
        values.append(float(d["random_mean"]))
        errors.append(float(d["random_std"]))
    y = np.arange(len(names))
    ax.barh(y, values, color="tab:blue", alpha=0.8)
    if errors[-1]:
        ax.errorbar(values[-1], y[-1], xerr=errors[-1], color="k", capsize=4, lw=1)
    for yi, v, e in zip(y, values, errors):
        ax.annotate(f"  {v:.3g}", (v + e, yi), va="center", fontsize=8)
    ax.set_yticks(y, [n.replace("_", " ") for n in names])
    ax.invert_yaxis()
    lam = float(g["lambda_max"])
    ax.axvline(lam, color="tab:red", lw=1.5, label=f"λ_max = {lam:.4g}")
    if "threshold" in g:
        thr = float(g["threshold"])
        ax.axvline(thr, color="k", ls="--", lw=1.2, label=f"(2+2β)/lr = {thr:.4g}")
    if all(v > 0 for v in values) and lam > 0:
        ax.set_xscale("log")
    ax.set_xlabel("S(u) = uᵀHu / ‖u‖²")
    title = "directional sharpness"
    if "eos_ratio" in g:
        title += f"   (EoS ratio {float(g['eos_ratio']):.3g})"
    pc = g.get("preconditioned")
    if isinstance(pc, dict):
        title += f"\nAdam: λ_max(P⁻¹H) = {pc['lambda_max']:.4g} vs {pc['threshold']:.4g}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def _quadratic(ax: Any, g: dict[str, Any]) -> None:
    q = g.get("quadratic")
    if not isinstance(q, dict):
        ax.set_axis_off()
        return
    t = np.asarray(q["steps"])
    ax.plot(t, q["true_loss"], "o-", ms=3, color="tab:blue", label="true loss L(θ + t·u)")
    ax.plot(t, q["model_loss"], "--", color="tab:orange", label="quadratic model")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_xlabel("t (multiples of the update u)")
    ax.set_ylabel("loss")
    ax.set_title(f"along the update ({g.get('update_source', '')})", fontsize=10)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot(content: dict[str, Any], path: str) -> None:
    """Two panels: S(u) per direction with λ_max (and the EoS threshold), and the 1-D model."""
    import matplotlib.pyplot as plt

    g = content["sharpness"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _bars(axes[0], g)
    _quadratic(axes[1], g)
    fig.suptitle(
        f"sharpness of {source_name(content)} ({content.get('model', '')}, "
        f"{content.get('curvature', '')})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
