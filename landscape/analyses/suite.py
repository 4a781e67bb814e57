"""Several analyses of one opened Problem, each run once: what ``check`` and ``track`` share.

``run(problem, ["trace", "spectrum"], {"spectrum": {"top_k": 3}})`` returns ``{name: Result}``.
Options per analysis are the keyword arguments of its function (``landscape.spectrum`` ...);
``sharpness`` and ``ghost`` also take the step's options (``lr``, ``no_adam``, ``optimizer``,
``optimizer_order``; ghost ``direction``, ``tau``), and ``lmc`` needs ``against``.
"""

from __future__ import annotations

import inspect as _inspect
import os
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..problem import Problem, ProgressFn
from ..results import Result
from . import ghost as _ghost
from . import inspect as _insp
from . import lmc as _lmc
from . import sharpness as _sharp
from . import spectrum as _spec
from . import trace as _trace

NAMES = ("inspect", "spectrum", "trace", "sharpness", "ghost", "lmc")
_STEP = {"lr", "no_adam", "optimizer", "optimizer_order"}
_SET_HERE = {"problem", "progress", "seed", "adam", "update", "file_direction", "direction",
             "label", "tau", "step_source", "others", "eval_problem", "names", "format",
             "optimizer", "steps"}
_FUNCS: dict[str, Callable[..., Result]] = {
    "inspect": _insp.inspect, "spectrum": _spec.spectrum, "trace": _trace.trace,
    "sharpness": _sharp.sharpness, "ghost": _ghost.ghost, "lmc": _lmc.lmc,
}
_EXTRA = {"sharpness": _STEP, "ghost": _STEP | {"direction", "tau"}, "lmc": set(), "inspect": set()}


def allowed(name: str) -> set[str]:
    """The option names ``name`` takes in ``options``."""
    params = set(_inspect.signature(_FUNCS[name]).parameters) - _SET_HERE
    return params | _EXTRA.get(name, set())


def check_options(options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``options`` with dashes in keys made underscores; InputError on an unknown name."""
    out: dict[str, dict[str, Any]] = {}
    for name, opts in options.items():
        if name not in _FUNCS:
            raise InputError(f"options for {name!r}: no such analysis; use {', '.join(NAMES)}")
        if not isinstance(opts, dict):
            raise InputError(f"options for {name!r} must be a table, e.g. {name} = {{seed = 1}}")
        norm = {k.replace("-", "_"): v for k, v in opts.items()}
        unknown = sorted(set(norm) - allowed(name))
        if unknown:
            raise InputError(f"{name} has no option {unknown[0]!r}; it takes "
                             f"{', '.join(sorted(allowed(name)))}")
        out[name] = norm
    return out


def _update(problem: Problem, o: dict[str, Any], next_checkpoint: Any) -> tuple[Any, Any]:
    from .. import steps

    return steps.update(problem, next_checkpoint, lr=o.get("lr"),
                        use_optimizer=not o.get("no_adam", False),
                        optimizer=o.get("optimizer", "auto"),
                        optimizer_order=o.get("optimizer_order"))


def _one(name: str, problem: Problem, o: dict[str, Any], seed: int, progress: ProgressFn | None,
         next_checkpoint: Any, against: Any) -> Result:
    from .. import steps

    if name == "inspect":
        origin = getattr(problem, "origin", None)
        optim: dict[str, Any] = {}
        if origin is not None and origin.checkpoint.optimizer:
            from ..loading.optimizer import describe_optimizer

            optim = describe_optimizer(origin.checkpoint.optimizer)
        fmt = origin.checkpoint.format if origin is not None else ""
        return _insp.inspect(problem, format=fmt, optimizer=optim)
    if name in ("spectrum", "trace"):
        return _FUNCS[name](problem, seed=seed, progress=progress, **o)
    if name == "sharpness":
        update, adam = _update(problem, o, next_checkpoint)
        kw = {k: v for k, v in o.items() if k not in _STEP - {"lr"}}
        return _sharp.sharpness(problem, seed=seed, adam=adam, update=update, progress=progress,
                                **kw)
    if name == "ghost":
        update, _ = _update(problem, o, next_checkpoint)
        d = steps.ghost_direction(problem, o.get("direction"), update, lr=o.get("lr"),
                                  tau=o.get("tau"), seed=seed)
        kw = {k: v for k, v in o.items() if k not in _STEP | {"direction", "tau"}}
        return _ghost.ghost(problem, d.vector, d.label, tau=d.tau, step_source=d.step_source,
                            progress=progress, **kw)
    if against is None:
        raise InputError("rules on lmc.* need a second checkpoint: pass `against`")
    from ..session import weights_like

    origin = getattr(problem, "origin", None)
    first = origin.checkpoint.path if origin is not None else "A"
    return _lmc.lmc(problem, [weights_like(problem, against)], seed=seed, progress=progress,
                    names=[first, os.fspath(against)], **o)


def run(
    problem: Problem,
    names: list[str] | tuple[str, ...],
    options: dict[str, dict[str, Any]] | None = None,
    *,
    next_checkpoint: Any = None,
    against: Any = None,
    seed: int = 0,
    progress: Callable[[str], ProgressFn | None] | None = None,
) -> dict[str, Result]:
    """Run each analysis in ``names`` once on ``problem``; ``{name: Result}`` in NAMES order.

    ``next_checkpoint``: the checkpoint after one step (the update for sharpness and ghost);
    ``against``: lmc's second endpoint; ``progress(name)`` gives each analysis its callback.
    """
    unknown = [n for n in names if n not in _FUNCS]
    if unknown:
        raise InputError(f"no analysis {unknown[0]!r}; use {', '.join(NAMES)}")
    opts = check_options(options or {})
    out: dict[str, Result] = {}
    for name in NAMES:
        if name in names:
            bar = progress(name) if progress else None
            out[name] = _one(name, problem, opts.get(name, {}), seed, bar, next_checkpoint,
                             against)
            if bar is not None and hasattr(bar, "close"):
                bar.close()
    return out
