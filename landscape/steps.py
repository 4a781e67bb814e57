"""The step training takes next, and the direction ``ghost`` looks along, for an opened Problem.

The update is, in this order: NEXT − CKPT from the checkpoint after one step; the optimizer's next
step rebuilt from the checkpoint's state (:mod:`landscape.analyses.directions`); −lr·∇L with a
learning rate. ``ghost`` looks along the update when one is known, else along −∇L/‖∇L‖, and its
step length τ is ‖update‖ or lr·‖∇L‖ unless given.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from torch import Tensor

from .analyses import directions as dirs
from .errors import InputError
from .loading.checkpoints import Checkpoint
from .loading.optimizer import AdamState, adam_state
from .problem import Problem
from .session import _origin, weights_like

ADAM_KINDS = ("auto", "adam", "adamw")


def next_delta(problem: Problem, checkpoint: str | os.PathLike | Checkpoint) -> Tensor:
    """θ_NEXT − θ over ``problem``'s parameters, NEXT loaded into the same architecture."""
    return dirs.difference(problem, weights_like(problem, checkpoint))


def optimizer_state(problem: Problem, kind: str = "auto") -> AdamState | None:
    """The checkpoint's Adam state by parameter name, or None when it holds none.

    ``kind`` ('adam': L2 weight decay, 'adamw': decoupled) overrides what the state says; with
    'auto' and weight decay in a state that does not record which (torch < 2.6), Adam is assumed
    and a note says so in ``problem.notes``.
    """
    if kind not in ADAM_KINDS:
        raise InputError(f"`optimizer` {kind!r}: use one of {', '.join(ADAM_KINDS)}")
    sd = _origin(problem).checkpoint.optimizer
    if not sd:
        return None
    state = adam_state(sd, [n for n, _ in problem.model.named_parameters()])
    if state is None:
        return None
    if kind != "auto":
        return dataclasses.replace(state, kind=kind)
    groups = sd.get("param_groups") or [{}]
    if state.weight_decay > 0 and "decoupled_weight_decay" not in groups[0]:
        problem.notes.append(
            "the optimizer state has weight decay but does not say whether it was Adam or AdamW "
            "(torch < 2.6); assuming Adam: pass `optimizer` adamw if not"
        )
    return state


def update(
    problem: Problem,
    next_checkpoint: str | os.PathLike | Checkpoint | None = None,
    lr: float | None = None,
    use_optimizer: bool = True,
    optimizer: str = "auto",
) -> tuple[dirs.Update | None, AdamState | None]:
    """The update Δθ training takes from ``problem``'s θ (or None) and the Adam state used."""
    adam = optimizer_state(problem, optimizer) if use_optimizer else None
    delta = None if next_checkpoint is None else next_delta(problem, next_checkpoint)
    _, grad = problem.loss_and_grad()
    return dirs.resolve_update(problem, grad, delta, adam, lr), adam


@dataclass
class Direction:
    """A direction v for ``ghost``, its label, and the step length τ along it (if known)."""

    vector: Tensor
    label: str
    tau: float | None = None
    step_source: str = ""


def ghost_direction(
    problem: Problem,
    choice: str | None = None,
    step: dirs.Update | None = None,
    lr: float | None = None,
    tau: float | None = None,
    seed: int = 0,
) -> Direction:
    """``choice`` ('gradient', 'update', 'random' or a direction file; None: the update when one
    is known, else the gradient) as a Direction; ``tau`` overrides the implied step length."""
    choice = choice or ("update" if step is not None else "gradient")
    if choice == "gradient":
        _, grad = problem.loss_and_grad()
        d = Direction(-grad, "-gradient (descent)")
        if lr is not None:
            d.tau, d.step_source = lr * float(grad.norm()), "lr*|grad|"
    elif choice == "update":
        if step is None:
            raise InputError("`direction` update needs a next checkpoint, an Adam state or `lr`")
        d = Direction(step.vector, f"update ({step.source})", float(step.vector.norm()),
                      f"|update| ({step.source})")
    elif choice == "random":
        d = Direction(dirs.random_directions(problem, 1, seed)[0], f"random (seed {seed})")
    elif os.path.exists(choice):
        d = Direction(dirs.from_file(problem, choice), f"file {choice}")
    else:
        raise InputError(f"`direction` {choice!r}: use gradient, update, random or a file")
    if tau is not None:
        d.tau, d.step_source = tau, "given step"
    return d
