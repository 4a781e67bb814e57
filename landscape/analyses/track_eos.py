"""track's edge-of-stability columns: λ_max against the largest stable λ_max for the step taken.

Gradient descent with heavy-ball momentum β and step lr is stable on a quadratic while
λ_max ≤ 2(1 + β)/lr (Cohen et al. 2021, "Gradient Descent on Neural Networks Typically Occurs
at the Edge of Stability"); with groups of different β the smallest, whose threshold is lowest.
Adam's edge is on the preconditioned λ_max(P^-1/2 H P^-1/2) against (2 + 2β1)/((1 − β1)·lr),
38/lr at β1 = 0.9 (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of Stability");
RMSprop's against (2 + 2μ)/lr (``rmsprop_step``).

The lr is ``lr`` when given, one value for the whole run; else each checkpoint's own, from its
optimizer's param groups, where a scheduler leaves the rate of the next step (the largest over
the groups: with several, the ratio is then an upper bound for SGD, and Adam folds the others
into P). A schedule's lr 0 is infinitely stable: ratio 0.
"""

from __future__ import annotations

import math
from typing import Any

from .. import steps as _steps
from ..curvature import make_operator
from ..errors import InputError
from ..loading.optimizer import OptimizerState
from ..loading.optimizer_kind import display_name, kind_of
from ..problem import Problem
from .optimizer_step import adam_threshold
from .preconditioned import preconditioned
from .rmsprop_step import rmsprop_threshold

STORED_LR_COLUMNS = ["lr", "eos_threshold"]  # with the lr of each checkpoint (no ``lr`` given)


def optimizer_sd(problem: Problem) -> dict | None:
    """The optimizer state dict of the checkpoint ``problem`` was opened from, if any."""
    origin = getattr(problem, "origin", None)
    return getattr(getattr(origin, "checkpoint", None), "optimizer", None)


def before_first_step(problem: Problem, optimizer: str) -> bool:
    """An adaptive optimizer's state before its first step (groups with betas, no moments yet),
    unless ``optimizer`` is sgd: no preconditioner to take the edge on, so that row's
    eos_ratio is NaN, not GD's ratio."""
    sd = optimizer_sd(problem)
    groups = sd.get("param_groups") if isinstance(sd, dict) else None
    return (optimizer != "sgd" and isinstance(groups, list) and kind_of(sd) is None
            and any(isinstance(g, dict) and ("betas" in g or "alpha" in g) for g in groups))


def _groups(problem: Problem) -> list[dict]:
    """The param groups that hold parameters."""
    sd = optimizer_sd(problem)
    groups = (sd or {}).get("param_groups") if isinstance(sd, dict) else None
    return [g for g in groups or [] if isinstance(g, dict) and g.get("params")]


def stored_lr(problem: Problem) -> float:
    """The largest learning rate of the checkpoint's param groups: the scheduler's value for
    the next step. Raises ``InputError`` where it holds no optimizer state to read it from."""
    rates = [float(g["lr"]) for g in _groups(problem) if "lr" in g]
    if not rates:
        where = getattr(getattr(getattr(problem, "origin", None), "checkpoint", None), "path", "")
        raise InputError(f"the eos_ratio metric needs `lr`: {where or 'the checkpoint'} holds no "
                         "optimizer state to take each checkpoint's own from")
    return max(rates)


def parsed_state(problem: Problem, optimizer: str) -> OptimizerState | None:
    """The checkpoint's optimizer state as ``optimizer`` reads it: None for ``sgd`` (its rule
    needs only the groups) and where there is none. Raises for an unknown ``optimizer``."""
    if optimizer not in ("auto", "sgd", "adam"):
        raise InputError(f"`optimizer` {optimizer!r}: use auto, sgd or adam")
    return _steps.optimizer_state(problem) if optimizer != "sgd" and optimizer_sd(problem) else None


def threshold(problem: Problem, lr: float, optimizer: str = "auto",
              state: OptimizerState | None = None) -> float:
    """The stability threshold on λ_max for ``lr`` (see the module docstring).

    Adam's and RMSprop's are read from the same parsed state as the preconditioned λ_max they
    divide (``optimizer_step.adam_threshold``, ``rmsprop_step.rmsprop_threshold``); SGD's from
    the momentum of the groups that hold parameters. ``auto`` on another optimizer's state
    (NAdam, Adamax, ...) is an error: its edge is none of these rules'. ``state``: the state
    ``parsed_state`` gave, where the caller has it (else it is parsed here).
    """
    if state is None:
        state = parsed_state(problem, optimizer)
    sd = optimizer_sd(problem)
    if optimizer != "sgd":
        if state is not None and state.is_adam:
            return adam_threshold(state, lr)[0]
        if state is not None and state.kind == "rmsprop":
            return rmsprop_threshold(state, lr)[0]
        if optimizer == "adam":
            raise InputError("the eos_ratio of Adam compares the preconditioned lambda_max with "
                             "its threshold, and this checkpoint holds no Adam state "
                             "(exp_avg_sq): use `optimizer` sgd or save the optimizer")
        other = kind_of(sd)
        if other not in (None, "sgd"):
            raise InputError(f"the optimizer state is {display_name(other)}'s, whose edge of "
                             "stability is neither SGD's nor Adam's: pass `optimizer` sgd to "
                             "compare lambda_max with (2+2*momentum)/lr")
    groups = _groups(problem) or [{}]
    return (2 + 2 * min(float(g.get("momentum", 0.0) or 0.0) for g in groups)) / lr


def eos_row(problem: Problem, lambda_max: float, lr: float | None, optimizer: str, seed: int
            ) -> tuple[dict[str, float], int]:
    """eos_ratio and lambda_max_preconditioned (and, without ``lr``, the lr and threshold the
    checkpoint's own rate gives) for one checkpoint, and the matvecs spent."""
    out: dict[str, float] = {}
    if before_first_step(problem, optimizer):
        return out, 0
    rate = stored_lr(problem) if lr is None else lr
    if lr is None:
        out["lr"] = rate
    adam = parsed_state(problem, optimizer)  # parsed once for the threshold and the edge
    limit = threshold(problem, rate if rate > 0 else 1.0, optimizer, adam)  # and its refusals
    if adam is not None and adam.is_adaptive:  # the edge is on the preconditioned λ_max
        op = make_operator(problem, "hessian", seed=seed)  # (at lr 0: P at equal rates, ratio 0)
        pc: dict[str, Any] = preconditioned(problem, op, adam, lr, seed=seed + 1)
        out.update(lambda_max_preconditioned=pc["lambda_max"], eos_ratio=pc["ratio"])
        if lr is None:  # the rate the threshold took: the covered groups' largest
            out["lr"], out["eos_threshold"] = pc["lr"], pc["threshold"]
        return out, op.matvecs
    if rate <= 0:  # a schedule's end: no step, nothing can diverge
        out.update(eos_ratio=0.0, eos_threshold=math.inf)
        return out, 0
    out["eos_ratio"] = lambda_max / limit
    if lr is None:
        out["eos_threshold"] = limit
    return out, 0
