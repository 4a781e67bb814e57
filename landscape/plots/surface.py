"""The surface figure: 1-D, the loss (and accuracy) curve; 2-D, contour lines, filled contours and
a 3-D surface of the loss, with the --trajectory (projected) or the --through checkpoints on top.

``levels`` contour levels, ``log`` a log10 colour scale, ``vmax`` clips the loss from above (the
edges of a surface often dwarf the basin); points not computed yet are left blank.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import source_name

AXIS = {"random": "random direction", "hessian": "Hessian eigenvector", "through": "checkpoint",
        "trajectory": "principal component", "file": "direction"}  # fmt: skip


KINDS = {"random": "random directions", "hessian": "top Hessian eigenvectors",
         "through": "through checkpoints", "trajectory": "principal components of the trajectory",
         "file": "directions from files"}  # fmt: skip


def _title(g: dict[str, Any]) -> str:
    kind = str(g.get("kind", "?"))
    how = KINDS.get(kind, kind)
    if kind == "random":
        how += f", {g.get('norm')}-normalised" + (", biases/norm layers zeroed"
                                                  if g.get("ignore") == "biasbn" else "")
    source = f"{g['_source']}: " if g.get("_source") else ""
    return f"{source}{how}; buffers {g.get('bn', '?')}"


def _labels(g: dict[str, Any]) -> list[str]:
    kind = str(g.get("kind", ""))
    if kind == "through":
        return ["α along θ_B − θ_A", "β along θ_C − θ_A"]
    if kind == "trajectory" and "explained" in g:
        ex = np.atleast_1d(g["explained"])
        return [f"PC{i + 1} ({100 * e:.1f}% of variance)" for i, e in enumerate(ex)]
    if kind == "hessian" and "eigenvalues" in g:
        ev = np.atleast_1d(g["eigenvalues"])
        return [f"eigenvector {i + 1} (λ = {v:.4g})" for i, v in enumerate(ev)]
    return [f"{AXIS.get(kind, 'direction')} d{i + 1}" for i in range(2)]


def _marks(ax, g: dict[str, Any]) -> None:  # noqa: ANN001
    """The centre, the --through checkpoints and the projected --trajectory."""
    names = [os.path.basename(str(n)) for n in np.atleast_1d(g.get("checkpoints", []))]
    if g.get("kind") == "through":
        ax.plot([0], [0], "k*", ms=11)
        ax.annotate("A (centre)", (0, 0), xytext=(5, 5), textcoords="offset points", fontsize=8)
        for (px, py), name in zip([(1, 0), (0, 1)], names):
            ax.plot([px], [py], "k^", ms=8)
            ax.annotate(name, (px, py), xytext=(5, 5), textcoords="offset points", fontsize=8)
        return
    if "trajectory" in g:
        t = np.asarray(g["trajectory"])
        ax.plot(t[:, 0], t[:, 1], "-o", color="crimson", ms=3, lw=1.2, label="trajectory")
        ax.plot(t[:1, 0], t[:1, 1], "o", color="crimson", ms=7, mfc="w")
        ax.annotate(names[0] if names else "start", t[0], xytext=(5, 5),
                    textcoords="offset points", fontsize=8, color="crimson")  # fmt: skip
        ax.legend(fontsize=8, loc="upper right")
    ax.plot([0], [0], "k*", ms=11)


def _values(loss: np.ndarray, log: bool, vmax: float | None) -> tuple[np.ndarray, str]:
    z = np.array(loss, dtype=float)
    z[~np.isfinite(z)] = np.nan
    if vmax is not None:
        z = np.minimum(z, vmax)
    if log:
        z = np.log10(np.where(z > 0, z, np.nan))
        return z, "log10 loss"
    return z, "loss"


def plot(content: dict[str, Any], path: str, levels: int = 20, log: bool = False,
         vmax: float | None = None) -> None:  # fmt: skip
    """Draw the figure of a read-back ``surface`` result into ``path``."""
    import matplotlib.pyplot as plt

    g = {**content["surface"], "_source": source_name(content)}  # titles name the checkpoint
    x = np.asarray(g["x"], float)
    loss = np.asarray(g["loss"], float)
    labels = _labels(g)
    if loss.ndim == 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        z, what = _values(loss, log, vmax)
        ax.plot(x, z, "o-", ms=3, color="tab:blue", label=what)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(what, color="tab:blue")
        if g.get("kind") == "through":
            names = ["A"] + [os.path.basename(str(n)) for n in np.atleast_1d(g["checkpoints"])]
            for at, name in zip((0.0, 1.0), names):
                ax.axvline(at, color="0.5", lw=0.8, ls=":")
                ax.annotate(name, (at, 0.5), xycoords=("data", "axes fraction"), xytext=(3, 0),
                            textcoords="offset points", fontsize=8, color="0.3", rotation=90,
                            va="center")  # fmt: skip
        else:
            ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
        if "accuracy" in g:
            ax2 = ax.twinx()
            ax2.plot(x, np.asarray(g["accuracy"], float), "s--", ms=3, color="tab:orange")
            ax2.set_ylabel("accuracy", color="tab:orange")
        ax.grid(alpha=0.3)
        ax.set_title(f"loss along one direction\n{_title(g)}", fontsize=10)
    else:
        fig = _plot_2d(plt, g, x, np.asarray(g["y"], float), loss, labels, levels, log, vmax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_2d(plt, g, x, y, loss, labels, levels, log, vmax):  # noqa: ANN001
    z, what = _values(loss, log, vmax)
    X, Y = np.meshgrid(x, y, indexing="ij")
    finite = z[np.isfinite(z)]
    if finite.size == 0 or np.ptp(finite) == 0:
        bounds = None
    else:
        bounds = np.linspace(finite.min(), finite.max(), int(levels) + 1)
    fig = plt.figure(figsize=(16, 4.9))
    ax1 = fig.add_subplot(1, 3, 1)
    cs = ax1.contour(X, Y, z, levels=bounds if bounds is not None else int(levels),
                     cmap="viridis", linewidths=0.9)  # fmt: skip
    ax1.clabel(cs, cs.levels[::4], fontsize=7, fmt="%.3g")
    ax2 = fig.add_subplot(1, 3, 2)
    cf = ax2.contourf(X, Y, z, levels=bounds if bounds is not None else int(levels),
                      cmap="viridis")  # fmt: skip
    fig.colorbar(cf, ax=ax2, label=what, fraction=0.046)
    for ax, name in ((ax1, "contours"), (ax2, "filled contours")):
        _marks(ax, g)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.set_title(name, fontsize=10)
        ax.set_aspect("auto")
    ax3 = fig.add_subplot(1, 3, 3, projection="3d")
    ax3.plot_surface(X, Y, np.ma.masked_invalid(z), cmap="viridis", linewidth=0,
                     antialiased=True, rstride=1, cstride=1)  # fmt: skip
    if "trajectory" in g and np.isfinite(z).any():  # the path on the floor of the box
        t = np.asarray(g["trajectory"])
        ax3.plot(t[:, 0], t[:, 1], np.full(len(t), np.nanmin(z)), "-o", color="crimson", ms=2,
                 lw=1)  # fmt: skip
    ax3.set_xlabel(labels[0], fontsize=8)
    ax3.set_ylabel(labels[1], fontsize=8)
    ax3.set_zlabel(what, fontsize=8)
    ax3.view_init(elev=35, azim=-60)
    done = np.asarray(g.get("done", np.ones_like(loss, bool)), bool)
    extra = "" if done.all() else f"   ({int(done.sum())} of {done.size} points done)"
    fig.suptitle(f"loss surface of {_title(g)}{extra}", fontsize=11)
    return fig
