"""The step training takes next, and the direction ``ghost`` looks along, for an opened Problem.

The update is, in this order: NEXT − CKPT from the checkpoint after one step; the optimizer's next
step rebuilt from the checkpoint's state (:mod:`landscape.analyses.directions`); −lr·∇L with a
learning rate. ``ghost`` looks along the update when one is known, else along −∇L/‖∇L‖, and its
step length τ is ‖update‖ or lr·‖∇L‖ unless given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import Tensor

from .analyses import directions as dirs
from .errors import InputError
from .loading.checkpoints import Checkpoint
from .loading.optimizer import READ, OptimizerState, read_optimizer
from .loading.optimizer_kind import display_name, kind_of
from .problem import Problem
from .session import _origin, weights_like


def next_delta(problem: Problem, checkpoint: str | os.PathLike | Checkpoint) -> Tensor:
    """θ_NEXT − θ over ``problem``'s parameters, NEXT loaded into the same architecture."""
    return dirs.difference(problem, weights_like(problem, checkpoint))


def optimizer_state(problem: Problem, kind: str = "auto", optimizer_order: str | None = None
                    ) -> OptimizerState | None:
    """The checkpoint's optimizer state by parameter name (:func:`read_optimizer`), or None when
    it holds none; its notes (an assumed Adam, a partial optimizer) go to ``problem.notes``.

    ``kind`` ('adam': L2 weight decay, 'adamw': decoupled) overrides what the state says;
    ``optimizer_order`` ('model', 'nanogpt', 'hf') settles how its indices map to parameters.
    """
    sd = _origin(problem).checkpoint.optimizer
    if not sd:
        return None
    shapes = {n: tuple(p.shape) for n, p in problem.model.named_parameters()}
    state = read_optimizer(sd, shapes, kind=kind, order=optimizer_order)
    if state is not None:
        for note in state.notes:
            _note(problem, note)
        return state
    other = kind_of(sd)
    if other not in (None, *READ):
        _note(problem, f"the optimizer state is {display_name(other)}'s, and only Adam/AdamW, "
                       "SGD and RMSprop states are read: it is not used")
    return None


def _note(problem: Problem, note: str) -> None:
    """``note`` on ``problem``, once however often the state is read."""
    if note not in problem.notes:
        problem.notes.append(note)


def update(
    problem: Problem,
    next_checkpoint: str | os.PathLike | Checkpoint | None = None,
    lr: float | None = None,
    use_optimizer: bool = True,
    optimizer: str = "auto",
    optimizer_order: str | None = None,
) -> tuple[dirs.Update | None, OptimizerState | None]:
    """The update Δθ training takes from ``problem``'s θ (or None) and the optimizer state
    used (None with ``use_optimizer=False``)."""
    adam = optimizer_state(problem, optimizer, optimizer_order) if use_optimizer else None
    delta = None if next_checkpoint is None else next_delta(problem, next_checkpoint)
    _, grad = problem.loss_and_grad()
    step = dirs.resolve_update(problem, grad, delta, adam, lr)
    if step is not None and step.zero:
        _note(problem, "the optimizer state's lr is 0 in every param group (a schedule's end): "
                       "its next step is zero, so only its direction is used; `lr` takes the "
                       "step at a rate")
    return step, adam


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
        if step.zero:  # the optimizer's lr is 0: it steps nowhere
            d.tau, d.step_source = 0.0, f"lr 0 ({step.source} state)"
    elif choice == "random":
        d = Direction(dirs.random_directions(problem, 1, seed)[0], f"random (seed {seed})")
    elif os.path.exists(choice):
        d = Direction(dirs.from_file(problem, choice), f"file {choice}")
    else:
        raise InputError(f"`direction` {choice!r}: use gradient, update, random or a file")
    if tau is not None:
        d.tau, d.step_source = tau, "given step"
    return d
