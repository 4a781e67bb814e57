"""``track``: the same scalars over a training run, one row per checkpoint.

Per checkpoint θ_i (ordered by the step stored in it, else naturally by name): loss, accuracy,
‖∇L‖; λ_max (Lanczos, as ``spectrum``); tr(H) ± stderr (as ``trace``); the directional sharpness
uᵀHu/‖u‖² along the actual update u = θ_{i+1} − θ_i (as ``sharpness CKPT NEXT``); the ghost
radius ρ_a and r = τ/ρ_a along that update (as ``ghost CKPT NEXT``); the edge-of-stability
ratio λ_max / threshold at ``lr`` or at each checkpoint's own lr (``track_eos``). With ``out`` the
rows so far are written after each checkpoint, and a later call with the same file resumes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import steps as _steps
from ..curvature import make_operator
from ..errors import InputError
from ..problem import Problem
from ..results import Result, RunInfo, read_result, write_result
from . import track_eos as eos
from .ghost import ghost as _ghost
from .spectrum import spectrum as _spectrum
from .trace import trace as _trace
from .track_eos import threshold  # noqa: F401  (public: the stability threshold)
from .track_order import order  # noqa: F401  (public: the checkpoints in training order)

METRICS = ("loss", "accuracy", "grad_norm", "lambda_max", "trace", "directional", "ghost",
           "eos_ratio")
COLUMNS = {"loss": ["loss"], "accuracy": ["accuracy"], "grad_norm": ["grad_norm"],
           "lambda_max": ["lambda_max"], "trace": ["trace", "trace_stderr"],
           "directional": ["directional", "update_norm"], "ghost": ["ghost_radius", "ghost_r"],
           "eos_ratio": ["eos_ratio", "lambda_max_preconditioned"]}
ProgressFn = Callable[[int, "int | None"], None]


def columns(metrics: list[str], lr: float | None) -> list[str]:
    """The columns of ``metrics``, with each checkpoint's lr and threshold where ``lr`` is not
    given (eos_ratio then takes every checkpoint's own)."""
    names = [c for m in metrics for c in COLUMNS[m]]
    return names + (eos.STORED_LR_COLUMNS if "eos_ratio" in metrics and lr is None else [])


@dataclass
class TrackResult(Result):
    """Columns (name -> one value per checkpoint) and where each row came from."""

    checkpoints: list[str]
    sha256: list[str]
    step: list[float]
    columns: dict[str, list[float]]
    options: dict[str, Any]
    step_source: str = "name"
    threshold: float | None = None
    matvecs: int = 0

    command: ClassVar[str] = "track"
    descriptions: ClassVar[dict[str, str]] = {
        "track/step": "training step of each checkpoint (stored step/global_step/epoch, or index)",
        "track/loss": "whole-data-set mean loss",
        "track/accuracy": "whole-data-set accuracy",
        "track/grad_norm": "2-norm of the whole-data-set gradient",
        "track/lambda_max": "largest Hessian eigenvalue (Lanczos)",
        "track/trace": "estimate of tr(H)",
        "track/trace_stderr": "standard error of the trace estimate",
        "track/directional": "u^T H u/|u|^2, u = theta_next - theta (NaN for the last)",
        "track/update_norm": "|theta_next - theta|",
        "track/ghost_radius": "rho_a = pi / max spread along the update (else -gradient)",
        "track/ghost_r": "tau / rho_a, tau the step length along it",
        "track/eos_ratio": "lambda_max / threshold, Adam's preconditioned lambda_max for Adam "
        "(>= 1: past the edge of stability)",
        "track/lambda_max_preconditioned": "Adam: lambda_max(P^-1/2 (H + wd) P^-1/2), Adam's "
        "preconditioner P (NaN for other optimizers)",
        "track/threshold": "largest stable lambda_max for the optimizer and lr",
        "track/lr": "each checkpoint's own learning rate (its optimizer's largest group lr)",
        "track/eos_threshold": "largest stable lambda_max at each checkpoint's own lr (inf at "
        "lr 0)",
    }

    def tree(self) -> dict[str, Any]:
        g: dict[str, Any] = {
            "attrs": {"options": json.dumps(self.options, sort_keys=True, default=str),
                      "metrics": ",".join(self.options.get("metrics", [])),
                      "step_source": self.step_source},
            "checkpoint": list(self.checkpoints),
            "sha256": list(self.sha256),
            "step": np.asarray(self.step, dtype=np.float64),
        }
        for k, v in self.columns.items():
            g[k] = np.asarray(v, dtype=np.float64)
        if self.threshold is not None:
            g["threshold"] = self.threshold
        return {"track": g}


def row(problem: Problem, next_checkpoint: str | None, metrics: list[str], o: dict[str, Any]
        ) -> tuple[dict[str, float], int]:
    """One checkpoint's values (NaN where a metric does not apply) and the matvecs spent."""
    seed, lr, spent = o.get("seed", 0), o.get("lr"), 0
    keep = columns(metrics, lr)
    out: dict[str, float] = {c: math.nan for c in keep}
    ev = problem.evaluate()
    out["loss"] = ev["loss"]
    out["accuracy"] = math.nan if ev.get("accuracy") is None else ev["accuracy"]
    _, g = problem.loss_and_grad()
    out["grad_norm"] = float(g.norm())
    if "lambda_max" in metrics or "eos_ratio" in metrics:
        s = _spectrum(problem, top_k=o.get("top_k", 1), density=False, seed=seed)
        out["lambda_max"], spent = s.whole.lambda_max, spent + s.matvecs
    if "trace" in metrics:
        t = _trace(problem, method=o.get("method", "xtrace"), probes=o.get("probes"), seed=seed)
        out["trace"], out["trace_stderr"], spent = t.estimate, t.stderr, spent + t.matvecs
    if "directional" in metrics and next_checkpoint is not None:
        u = _steps.next_delta(problem, next_checkpoint)
        v = (u / u.norm())[None]
        op = make_operator(problem, "hessian", seed=seed)
        out["directional"] = float((v * op(v)).sum())
        out["update_norm"], spent = float(u.norm()), spent + op.matvecs
    if "ghost" in metrics and problem.is_classification:
        update, _ = _steps.update(problem, next_checkpoint, lr=lr)  # lr 0: τ = 0 along it
        d = _steps.ghost_direction(problem, None, update, lr=lr, seed=seed)
        r = _ghost(problem, d.vector, d.label, tau=d.tau, step_source=d.step_source, n_curve=2)
        out["ghost_radius"] = r.rho_a
        out["ghost_r"] = r.tau / r.rho_a if r.tau is not None else math.nan
        spent += r.matvecs
    if "eos_ratio" in metrics:
        values, used = eos.eos_row(problem, out["lambda_max"], lr, o.get("optimizer", "auto"), seed)
        out.update(values)
        spent += used
    return {k: v for k, v in out.items() if k in keep}, spent


def _resume(out: str, result: TrackResult) -> int:
    """Rows of ``out`` (made with the same options, the same first checkpoints) taken over."""
    if not os.path.exists(out):
        return 0
    old = read_result(out).get("track")
    mine = json.loads(result.tree()["track"]["attrs"]["options"])
    if not isinstance(old, dict) or json.loads(old.get("options", "null")) != mine:
        raise InputError(f"{out} holds no track made with these options: remove it, pass another "
                         "`out`, or repeat the options it was made with to resume")
    shas = list(old.get("sha256", []))
    if shas != result.sha256[: len(shas)]:
        raise InputError(f"{out} was made from other checkpoints than these (or in another "
                         "order): remove it or pass another `out`")
    for k in result.columns:
        result.columns[k] = [float(x) for x in np.atleast_1d(old[k])]
    result.matvecs = int(read_result(out).get("matvecs", 0))
    if "threshold" in old:
        result.threshold = float(old["threshold"])
    return len(shas)


def track(
    checkpoints: list[str],
    metrics: list[str] | tuple[str, ...] | None = None,
    *,
    lr: float | None = None,
    optimizer: str = "auto",
    top_k: int = 1,
    method: str = "xtrace",
    probes: int | None = None,
    seed: int = 0,
    open_options: dict[str, Any] | None = None,
    out: str | None = None,
    run_info: Callable[[TrackResult, Problem], RunInfo] | None = None,
    progress: ProgressFn | None = None,
) -> TrackResult:
    """One row per checkpoint of a training run (see the module docstring).

    ``open_options`` go to ``landscape.open`` for every checkpoint. With ``out``, the file is
    rewritten (atomically) after every row and an existing one is resumed; ``run_info(result,
    problem)`` gives its provenance (``problem``: the last checkpoint's). ``progress(rows done,
    rows)`` is called after each row.
    """
    from ..session import open as open_problem

    default = [m for m in METRICS if m != "eos_ratio" or lr is not None]
    metrics = list(metrics or default)
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise InputError(f"`metrics` {bad[0]!r} unknown; choose from {', '.join(METRICS)}")
    oo = dict(open_options or {})
    ordered, source = order(checkpoints, trust=bool(oo.get("trust")))
    opts = {"metrics": metrics, "lr": lr, "optimizer": optimizer, "top_k": top_k,
            "method": method, "probes": probes, "seed": seed, "open": oo}
    result = TrackResult([p for p, _, _ in ordered], [s for _, _, s in ordered],
                         [st for _, st, _ in ordered],
                         {c: [] for c in columns(metrics, lr)}, opts, source)
    done = _resume(out, result) if out else 0
    total = len(ordered)
    for i in range(total):
        if i < done:
            continue
        problem = open_problem(ordered[i][0], seed=seed, **oo)
        nxt = ordered[i + 1][0] if i + 1 < total else None
        values, spent = row(problem, nxt, metrics, opts)
        for k in result.columns:
            result.columns[k].append(values.get(k, math.nan))
        result.matvecs += spent
        if lr is not None and not eos.before_first_step(problem, optimizer):
            result.threshold = threshold(problem, lr, optimizer)
        if out:
            partial = _prefix(result, i + 1)
            run = run_info(partial, problem) if run_info else RunInfo("track", seed=seed)
            write_result(out, partial, run)
        if progress is not None:
            progress(i + 1, total)
    return result


def _prefix(r: TrackResult, n: int) -> TrackResult:
    return TrackResult(r.checkpoints[:n], r.sha256[:n], r.step[:n], r.columns, r.options,
                       r.step_source, r.threshold, r.matvecs)
