"""``lmc``: loss and accuracy along θ(α) = (1−α)θ_A + αθ_B, and the barriers on that line.

Barrier against the line between the endpoint values (Entezari et al. 2022):
    B = max_α [L(α) − ((1−α)L(0) + αL(1))];
against their mean (Frankle et al. 2020): B_mean = max_α L(α) − (L(0)+L(1))/2. The same for the
error 1 − accuracy. Buffers are interpolated, kept from A, or (BatchNorm, ``reset``) re-estimated at
every α as a cumulative average over fresh batches. Each checkpoint's own loss and accuracy, as
saved (its own buffers, no reset), are measured beside the curve: with ``reset`` the curve's
endpoints use re-estimated statistics, not the EMAs training saved, and differ. Layer-wise LMC
(Adilova et al. 2024) interpolates one module at a time with the rest held at A, and at B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..problem import Problem, ProgressFn
from ..results import Result
from .interpolation import Interpolation, has_batchnorm

METRICS = ("barrier_loss", "barrier_accuracy", "barrier_loss_mean", "barrier_accuracy_mean")


@dataclass
class LMCResult(Result):
    alpha: np.ndarray
    curves: dict[str, np.ndarray]  # loss, accuracy, eval_loss, eval_accuracy (those measured)
    barriers: dict[str, float]  # METRICS, with an eval_ prefix for the second set
    bn: str = "interpolate"
    align: str = "none"
    names: list[str] = field(default_factory=list)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    alignment: dict[str, Any] = field(default_factory=dict)
    pairwise: dict[str, np.ndarray] = field(default_factory=dict)
    own: dict[str, np.ndarray] = field(default_factory=dict)  # own_loss, ... per checkpoint
    aligned_state: dict[str, Tensor] | None = None  # B after alignment (not written to the file)
    matvecs: int = 0

    command: ClassVar[str] = "lmc"
    descriptions: ClassVar[dict[str, str]] = {
        "lmc/alpha": "interpolation coefficient α of θ(α) = (1−α)θ_A + αθ_B",
        "lmc/loss": "whole-data-set mean loss at θ(α)",
        "lmc/accuracy": "whole-data-set accuracy at θ(α)",
        "lmc/barrier_loss": "max_α L(α) − ((1−α)L(0)+αL(1)) (Entezari et al. 2022)",
        "lmc/barrier_accuracy": "max_α E(α) − ((1−α)E(0)+αE(1)), E = 1 − accuracy (Entezari)",
        "lmc/barrier_loss_mean": "max_α L(α) − (L(0)+L(1))/2 (Frankle et al. 2020)",
        "lmc/barrier_accuracy_mean": "max_α E(α) − (E(0)+E(1))/2, E = 1 − accuracy (Frankle)",
        "lmc/barrier_alpha": "α where the loss is furthest above the endpoint line",
        "lmc/own_loss": "each checkpoint's whole-data-set mean loss as saved (its own buffers, "
        "no reset), in argument order",
        "lmc/own_accuracy": "each checkpoint's whole-data-set accuracy as saved (its own buffers, "
        "no reset), in argument order",
        "lmc/eval_own_loss": "each checkpoint's mean loss on the eval set as saved (its own "
        "buffers, no reset), in argument order",
        "lmc/eval_own_accuracy": "each checkpoint's accuracy on the eval set as saved (its own "
        "buffers, no reset), in argument order",
    }

    def tree(self) -> dict[str, Any]:
        lmc: dict[str, Any] = {
            "attrs": {"bn": self.bn, "align": self.align, "checkpoints": list(self.names)},
            "alpha": self.alpha,
            **self.curves,
            **self.own,
            **self.barriers,
        }
        if self.layers:
            lmc["layers"] = self.layers
        if self.alignment:
            lmc["alignment"] = self.alignment
        if self.pairwise:
            lmc["pairwise"] = self.pairwise
        return {"lmc": lmc}


def barriers(alpha: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """(max gap to the endpoint line, max gap to the endpoint mean, α of the first) of a curve."""
    order = np.argsort(alpha)
    a, v = np.asarray(alpha, float)[order], np.asarray(values, float)[order]
    gap = v - ((1 - a) * v[0] + a * v[-1])
    k = int(np.argmax(gap))
    return float(gap[k]), float(v.max() - (v[0] + v[-1]) / 2), float(a[k])


def _grid(points: int) -> np.ndarray:
    if points < 2:
        raise InputError(f"`points` must be at least 2 (the endpoints), got {points}")
    return np.linspace(0.0, 1.0, points)


def _refined(alpha: np.ndarray, loss: np.ndarray, n: int) -> np.ndarray:
    """``n`` new α evenly inside the grid cell(s) on either side of the largest gap to the
    endpoint line (split between the two cells when the maximum is interior)."""
    k = int(np.argmax(loss - ((1 - alpha) * loss[0] + alpha * loss[-1])))
    cells = [(alpha[j], alpha[j + 1]) for j in (k - 1, k) if 0 <= j < len(alpha) - 1]
    counts = [n - n // len(cells)] + ([n // 2] if len(cells) == 2 else [])
    return np.concatenate([np.linspace(lo, hi, c + 2)[1:-1] for (lo, hi), c in zip(cells, counts)])


class _Scan:
    def __init__(self, ip: Interpolation, progress: ProgressFn | None, total: int) -> None:
        self.ip, self.progress, self.total, self.done = ip, progress, total, 0

    def curve(
        self, a: dict, b: dict, alpha: np.ndarray, names: set[str], base: str = "a"
    ) -> dict[str, np.ndarray]:
        rows = []
        for x in alpha:
            rows.append(self.ip.measure(self.ip.state(a, b, float(x), names, base)))
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}

    def advance(self, count: int) -> None:
        """Count ``count`` evaluations made outside a curve."""
        self.done += count
        if self.progress:
            self.progress(self.done, self.total)


def summarise(alpha: np.ndarray, curves: dict[str, np.ndarray]) -> dict[str, float]:
    """Both barrier definitions for loss and error, on each data set measured."""
    out: dict[str, float] = {}
    for prefix in ("", "eval_"):
        if prefix + "loss" not in curves:
            continue
        line, mean, at = barriers(alpha, curves[prefix + "loss"])
        out.update({prefix + "barrier_loss": line, prefix + "barrier_loss_mean": mean})
        out[prefix + "barrier_alpha"] = at
        if prefix + "accuracy" in curves:
            line, mean, _ = barriers(alpha, 1.0 - curves[prefix + "accuracy"])
            out.update({prefix + "barrier_accuracy": line, prefix + "barrier_accuracy_mean": mean})
    return out


def own_values(ip: Interpolation, states: list[dict[str, Tensor]]) -> dict[str, np.ndarray]:
    """Each state's loss and accuracy as saved: parameters and buffers its own, no BatchNorm
    reset (``own_loss[i]`` is what ``inspect`` reports for checkpoint i)."""
    rows = [ip.measure(s) for s in states]
    out: dict[str, np.ndarray] = {}
    for key in rows[0]:
        prefix, what = ("eval_", key[5:]) if key.startswith("eval_") else ("", key)
        out[f"{prefix}own_{what}"] = np.array([r[key] for r in rows])
    return out


def _align(problem: Problem, a: dict, b: dict, seed: int) -> tuple[dict, dict[str, Any]]:
    from ..align import align_weights

    example = problem.example_inputs(8)
    aligned, match, spec = align_weights(problem.model, a, b, example, seed=seed)
    info: dict[str, Any] = {
        "attrs": {"method": "weight matching (Ainsworth et al. 2023)"},
        "distance_before": match.distance_before,
        "distance_after": match.distance_after,
        "sweeps": match.sweeps,
        "groups": list(spec.groups),
        "sizes": np.array([spec.sizes[g] for g in spec.groups]),
        "moved": np.array(
            [int((match.perms[g] != torch.arange(len(match.perms[g]))).sum()) for g in spec.groups]
        ),  # fmt: skip
    }
    if spec.fixed:  # units alignment could not follow (attention heads): they keep their places
        info["fixed"] = [f"{where} {why}" for where, why in spec.fixed.items()]
    return aligned, info


def lmc(
    problem: Problem,
    others: list[dict[str, Tensor]],
    eval_problem: Problem | None = None,
    points: int = 25,
    refine: int = 0,
    bn: str | None = None,
    bn_batches: int = 10,
    align: str = "none",
    layerwise: bool = False,
    names: list[str] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> LMCResult:
    """Scan A = ``problem``'s model to B = ``others[0]``; with more states, every pair's barriers.

    ``others`` are state dicts of A's architecture. ``align='weights'`` permutes each second
    endpoint's hidden units to match the first (weight matching) before interpolating.
    """
    if not others:
        raise InputError("lmc needs a second endpoint: pass at least one state dict in others")
    if align not in ("none", "weights"):
        raise InputError(f"`align` {align!r} unknown; choose none or weights")
    bn = bn or ("reset" if has_batchnorm(problem.model) else "interpolate")
    ip = Interpolation(problem, eval_problem, bn, bn_batches, seed)
    device = problem.theta.device
    a = {k: v.detach() for k, v in problem.model.state_dict().items()}
    states = [a] + [{k: s[k].to(device=device, dtype=v.dtype) for k, v in a.items()}
                    for s in others]  # fmt: skip
    grid = _grid(points)
    blocks = problem.blocks() if layerwise else []
    n_pairs = len(states) * (len(states) - 1) // 2
    scan = _Scan(ip, progress, len(grid) * (n_pairs + 2 * len(blocks)) + refine + len(states))
    alignment: dict[str, Any] = {}
    b = states[1]
    if align == "weights":
        b, alignment = _align(problem, a, b, seed)
    every = ip.every
    curves = scan.curve(a, b, grid, every)
    alpha = grid
    if refine > 0:
        extra = _refined(grid, curves["loss"], refine)
        more = scan.curve(a, b, extra, every)
        alpha = np.concatenate([grid, extra])
        order = np.argsort(alpha)
        alpha = alpha[order]
        curves = {k: np.concatenate([v, more[k]])[order] for k, v in curves.items()}
    result = LMCResult(alpha, curves, summarise(alpha, curves), ip.bn, align, names or [])
    result.own = own_values(ip, states)
    scan.advance(len(states))
    result.alignment = alignment
    result.aligned_state = b if align == "weights" else None
    for block in blocks:
        group: dict[str, Any] = {"attrs": {"parameters": ", ".join(block.names)}}
        for base in ("a", "b"):
            c = scan.curve(a, b, grid, set(block.names), base)
            group.update({f"{k}_rest_{base}": v for k, v in c.items()})
            group.update({f"{k}_rest_{base}": v for k, v in summarise(grid, c).items()})
        result.layers[block.name] = group
    if len(states) > 2:
        result.pairwise = _pairwise(problem, scan, states, grid, every, align, seed, result)
    return result


def _pairwise(problem, scan, states, grid, every, align, seed, first) -> dict[str, np.ndarray]:  # noqa: ANN001
    k = len(states)
    keys = [m for m in first.barriers if not m.endswith("barrier_alpha")]
    mats = {m: np.zeros((k, k)) for m in keys}
    for i in range(k):
        for j in range(i + 1, k):
            if (i, j) == (0, 1):
                values = first.barriers
            else:
                b = _align(problem, states[i], states[j], seed)[0] if align == "weights" else None
                c = scan.curve(states[i], states[j] if b is None else b, grid, every)
                values = summarise(grid, c)
            for m in keys:
                mats[m][i, j] = mats[m][j, i] = values[m]
    return mats
