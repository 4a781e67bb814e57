"""``surface``: the whole-data-set loss and accuracy on a 1-D line or 2-D plane through θ.

loss[i, j] = L(θ + x[i]·d1 + y[j]·d2) (Li et al. 2018, "Visualizing the Loss Landscape of Neural
Nets"; directions in :mod:`.surface_directions`). Buffers are kept at θ's, interpolated like the
parameters between ``--through`` checkpoints, or (BatchNorm, ``reset``) re-estimated at every point
as in ``lmc``. Points are independent: they are evaluated in fixed blocks of the row-major grid
(several at once through ``torch.func.vmap`` where the model allows it) and handed to ``save``
block by block, so an interrupted run continues from what was saved (see :func:`resume`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..problem import Problem, ProgressFn
from ..results import Result
from .interpolation import has_batchnorm
from .surface_directions import Directions
from .surface_eval import PointEvaluator, auto_chunk

BN_MODES = ("reset", "interpolate", "keep")


@dataclass
class SurfaceResult(Result):
    x: np.ndarray
    y: np.ndarray | None
    loss: np.ndarray  # (NX, NY), or (NX,) for one direction; NaN where not done
    accuracy: np.ndarray | None
    done: np.ndarray  # bool, loss's shape
    directions: np.ndarray  # (n_dirs, P), rows in θ's order
    kind: str = "random"
    norm: str = "filter"
    ignore: str = "biasbn"
    seed: int = 0
    bn: str = "keep"
    names: list[str] = field(default_factory=list)  # --through / --trajectory checkpoints
    extra: dict[str, Any] = field(default_factory=dict)
    matvecs: int = 0

    command: ClassVar[str] = "surface"
    descriptions: ClassVar[dict[str, str]] = {
        "surface/x": "coordinate along d1 (row i of loss)",
        "surface/y": "coordinate along d2 (column j of loss)",
        "surface/loss": "whole-data-set mean loss at θ + x[i]·d1 + y[j]·d2 (NaN: not done yet)",
        "surface/accuracy": "whole-data-set accuracy at θ + x[i]·d1 + y[j]·d2 (NaN: not done)",
        "surface/done": "True where the point has been evaluated (a resumed run fills the rest)",
        "surface/directions": "the directions d1 (, d2) as rows (n_dirs, P) in θ's order",
        "surface/eigenvalues": "Hessian eigenvalues of the directions (--axes hessian)",
        "surface/trajectory": "the --trajectory checkpoints' coordinates (θ_k − θ)·d (K, 2)",
        "surface/explained": "fraction of the trajectory's variance along each direction",
    }

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def tree(self) -> dict[str, Any]:
        attrs = {"kind": self.kind, "norm": self.norm, "ignore": self.ignore, "seed": self.seed,
                 "bn": self.bn, "n_dirs": len(self.directions), "checkpoints": list(self.names)}
        g: dict[str, Any] = {"attrs": attrs, "x": self.x, "y": self.y, "loss": self.loss,
                             "accuracy": self.accuracy, "done": self.done,
                             "directions": self.directions}  # fmt: skip
        for k in ("eigenvalues", "trajectory", "explained"):
            if k in self.extra:
                g[k] = np.asarray(self.extra[k])
        return {"surface": g}


def parse_steps(text: str, n_dirs: int) -> tuple[int, ...]:
    """``N`` or ``NX,NY`` -> points per axis (N for every axis when one number is given)."""
    try:
        parts = [int(p) for p in str(text).split(",")]
    except ValueError:
        raise InputError(f"`steps` {text!r}: expected N or NX,NY") from None
    if len(parts) == 1:
        parts = parts * n_dirs
    if len(parts) != n_dirs or min(parts) < 1:
        raise InputError(f"`steps` {text!r}: need {n_dirs} positive count(s) for {n_dirs} axes")
    return tuple(parts)


def parse_range(text: str, n_dirs: int) -> tuple[tuple[float, float], ...]:
    """``R`` (−R:R on every axis) or ``X0:X1[,Y0:Y1]`` -> (lo, hi) per axis."""
    try:
        if ":" not in str(text) and "," not in str(text):
            r = float(text)
            return ((-r, r),) * n_dirs
        spans = [tuple(float(v) for v in p.split(":")) for p in str(text).split(",")]
    except ValueError:
        raise InputError(f"`range` {text!r}: expected R or X0:X1[,Y0:Y1]") from None
    if len(spans) == 1:
        spans = spans * n_dirs
    if len(spans) != n_dirs or any(len(s) != 2 for s in spans):
        raise InputError(f"`range` {text!r}: need {n_dirs} span(s) X0:X1 for {n_dirs} axes")
    return tuple(spans)  # type: ignore[return-value]


def empty(directions: Directions, steps: tuple[int, ...], ranges: tuple[tuple[float, float], ...],
          classification: bool, seed: int = 0, bn: str = "keep",
          names: list[str] | None = None) -> SurfaceResult:  # fmt: skip
    """A result with its grid and directions set and every point NaN and not done."""
    n = len(directions.vectors)
    if n not in (1, 2) or len(steps) != n or len(ranges) != n:
        raise InputError(f"a surface has 1 or 2 directions with a grid for each, got {n}")
    axes = [np.linspace(lo, hi, k) for (lo, hi), k in zip(ranges, steps)]
    shape = tuple(steps)
    return SurfaceResult(
        x=axes[0], y=axes[1] if n == 2 else None, loss=np.full(shape, np.nan),
        accuracy=np.full(shape, np.nan) if classification else None,
        done=np.zeros(shape, dtype=bool),
        directions=directions.vectors.detach().cpu().numpy(), kind=directions.kind,
        norm=directions.norm, ignore=directions.ignore, seed=int(seed), bn=bn,
        names=list(names or []),
        extra={k: v for k, v in directions.extra.items() if k != "matvecs"},
        matvecs=int(directions.extra.get("matvecs", 0)),
    )  # fmt: skip


def mismatch(stored: dict[str, Any], fresh: SurfaceResult) -> str | None:
    """Why a read-back result file cannot be continued by ``fresh`` (None: it can)."""
    if stored.get("command") != "surface" or "surface" not in stored:
        return "it is not a surface result"
    g, t = stored["surface"], fresh.tree()["surface"]
    for k in ("kind", "norm", "ignore", "seed", "bn", "n_dirs"):
        if str(g.get(k)) != str(t["attrs"][k]):
            return f"its {k} is {g.get(k)!r}, this run's is {t['attrs'][k]!r}"
    for k in ("x", "y", "loss", "accuracy"):
        a, b = g.get(k), t[k]
        if (a is None) != (b is None) or (b is not None and np.shape(a) != np.shape(b)):
            return f"its {k} has another shape"
        if k in ("x", "y") and b is not None and not np.array_equal(a, b):
            return f"its grid {k} differs"
    d = np.asarray(g["directions"], dtype=np.float64)
    f = np.asarray(fresh.directions, dtype=np.float64)
    if d.shape != f.shape or not np.allclose(d, f, rtol=1e-5, atol=1e-7 * np.abs(f).max()):
        return "its stored directions differ from this run's"
    return None


def resume(stored: dict[str, Any], fresh: SurfaceResult) -> SurfaceResult:
    """``fresh`` with the stored points and the stored (bit-exact) directions filled in."""
    g = stored["surface"]
    fresh.directions = np.asarray(g["directions"])
    fresh.done = np.asarray(g["done"], dtype=bool)
    fresh.loss = np.where(fresh.done, np.asarray(g["loss"], dtype=np.float64), np.nan)
    if fresh.accuracy is not None:
        fresh.accuracy = np.where(fresh.done, np.asarray(g["accuracy"], np.float64), np.nan)
    return fresh


def resolve_bn(problem: Problem, bn: str | None, through: bool) -> str:
    """The buffer mode in effect: reset only with BatchNorm, interpolate only along --through."""
    if bn is not None and bn not in BN_MODES:
        raise InputError(f"`bn` {bn!r} unknown; choose from {', '.join(BN_MODES)}")
    has_bn = has_batchnorm(problem.model)
    bn = bn or ("reset" if has_bn else "interpolate" if through else "keep")
    if (bn == "reset" and not has_bn) or (bn == "interpolate" and not through):
        return "keep"
    return bn


def surface(
    problem: Problem,
    result: SurfaceResult,
    states: list[dict[str, Tensor]] | None = None,
    bn_batches: int = 10,
    chunk: int | None = None,
    save: Callable[[SurfaceResult], None] | None = None,
    save_every: float = 1.0,
    progress: ProgressFn | None = None,
) -> SurfaceResult:
    """Fill the points of ``result`` that are not done yet, in place, and return it.

    ``states``: the whole states (parameters and buffers) of the --through checkpoints, for
    ``bn='interpolate'``. Points go in blocks of ``chunk`` (None: :func:`auto_chunk`) over the
    row-major grid, the same blocks on every run, so a resumed file is bit-identical;
    ``save(result)`` is called after a block when ``save_every`` seconds have passed since the
    last save, and at the end (also when interrupted by an exception).
    """
    ev = PointEvaluator(problem, torch.as_tensor(result.directions).to(problem.theta),
                        result.bn, states or [], bn_batches, result.seed)  # fmt: skip
    coords = _coords(result)
    flat_done = result.done.reshape(-1)
    total = int(flat_done.size)
    chunk = auto_chunk(problem) if not chunk else max(1, int(chunk))
    last = time.perf_counter()
    try:
        for start in range(0, total, chunk):
            block = list(range(start, min(start + chunk, total)))
            if flat_done[block].all():
                continue
            _store(result, block, ev.evaluate(coords[block]))
            if progress:
                progress(int(result.done.sum()), total)
            if save is not None and time.perf_counter() - last >= save_every:
                save(result)
                last = time.perf_counter()
    finally:  # interrupted too: keep every finished point
        if save is not None:
            save(result)
    return result


def _store(result: SurfaceResult, block: list[int], values: list[dict]) -> None:
    loss, done = result.loss.reshape(-1), result.done.reshape(-1)
    acc = None if result.accuracy is None else result.accuracy.reshape(-1)
    for k, v in zip(block, values):
        loss[k] = v["loss"]
        if acc is not None:
            acc[k] = np.nan if v["accuracy"] is None else v["accuracy"]
        done[k] = True


def _coords(result: SurfaceResult) -> np.ndarray:
    """(points, n_dirs) coordinates in row-major order of the loss array."""
    if result.y is None:
        return result.x[:, None]
    gx, gy = np.meshgrid(result.x, result.y, indexing="ij")
    return np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1)
