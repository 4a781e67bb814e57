"""Read Adam/AdamW/SGD state out of a ``torch.optim`` state dict, keyed by parameter name.

``read_optimizer`` is the one place the policy lives: which parameter each stored index is
(``optimizer_order.resolve_order``), each param group's own hyperparameters for its own
parameters, which parameters the state covers, and Adam versus AdamW. What the caller should
tell the user comes back in ``OptimizerState.notes``; nothing here prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.loading.optimizer_kind import optimizer_kind, state_keys
from landscape.loading.optimizer_order import resolve_order

KINDS = ("auto", "adam", "adamw")
_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg")
READ = ("adam", "sgd", "rmsprop")  # the optimizer_kind families read here


@dataclass(frozen=True)
class Hyper:
    """One parameter's hyperparameters, from its param group (torch.optim's defaults if absent)."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    maximize: bool = False
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    alpha: float = 0.99  # RMSprop's smoothing of square_avg
    centered: bool = False


@dataclass
class OptimizerState:
    """An optimizer's per-parameter state by model parameter name.

    ``kind`` is 'adam' (L2 weight decay), 'adamw' (decoupled), 'sgd' or 'rmsprop'; ``covered``
    lists the parameters with state (the others take no step); ``hyper`` holds each covered
    parameter's group hyperparameters; ``order`` says how indices were matched to names.
    """

    kind: str
    covered: list[str]
    hyper: dict[str, Hyper]
    steps: dict[str, float] = field(default_factory=dict)
    exp_avg: dict[str, Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[str, Tensor] = field(default_factory=dict)
    max_exp_avg_sq: dict[str, Tensor] = field(default_factory=dict)
    momentum_buffer: dict[str, Tensor | None] = field(default_factory=dict)
    square_avg: dict[str, Tensor] = field(default_factory=dict)  # RMSprop
    grad_avg: dict[str, Tensor] = field(default_factory=dict)  # RMSprop, centered
    order: str = "model"
    notes: list[str] = field(default_factory=list)

    @property
    def is_adam(self) -> bool:
        return self.kind in ("adam", "adamw")

    @property
    def is_adaptive(self) -> bool:
        """Adam(W) or RMSprop: a diagonal preconditioner, and an edge of stability on it."""
        return self.is_adam or self.kind == "rmsprop"

    @property
    def step(self) -> float:
        """The largest stored step count (Adam), 0 for SGD."""
        return max(self.steps.values(), default=0.0)

    @property
    def lr(self) -> float:
        """The largest learning rate over the covered parameters' groups."""
        return max(h.lr for h in self.hyper.values())


AdamState = OptimizerState  # the name this state had when it held Adam alone


def load_optimizer_file(path: str) -> tuple[dict | None, str | None]:
    """(the ``torch.optim`` state dict saved alone in ``path``, or None where there is none; a
    note where a file is there but does not load with ``weights_only=True`` or holds no such
    dict). For the optimizer files other tools save beside the weights: the Trainer's
    ``optimizer.pt``, accelerate's ``optimizer.bin``."""
    if not os.path.isfile(path):
        return None, None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: leave the state out
        return None, (f"{path} does not load with weights_only=True ({type(exc).__name__}): the "
                      "optimizer state is not used")
    if not isinstance(sd, dict) or "param_groups" not in sd:
        return None, f"{path} holds no torch.optim state dict: it is not used"
    return sd, None


def _groups(optimizer_sd: Any) -> tuple[dict, list[dict]]:
    if not isinstance(optimizer_sd, dict) or "param_groups" not in optimizer_sd:
        raise InputError("optimizer state is not a torch.optim state_dict (no 'param_groups')")
    state = optimizer_sd.get("state") or {}
    groups = optimizer_sd["param_groups"]
    if not isinstance(state, dict) or not isinstance(groups, list) or not groups:
        raise InputError("optimizer state_dict has malformed 'state' or empty 'param_groups'")
    return state, groups


def _num(value: Any) -> float:
    return float(value.item() if isinstance(value, Tensor) else value)


def _hyper(group: dict) -> Hyper:
    betas = tuple(_num(b) for b in group.get("betas", (0.9, 0.999)))
    return Hyper(
        lr=_num(group.get("lr", 0.0)),
        betas=(betas[0], betas[1]),
        eps=_num(group.get("eps", 1e-8)),
        weight_decay=_num(group.get("weight_decay", 0.0)),
        amsgrad=bool(group.get("amsgrad", False)),
        maximize=bool(group.get("maximize", False)),
        momentum=_num(group.get("momentum", 0.0)),
        dampening=_num(group.get("dampening", 0.0)),
        nesterov=bool(group.get("nesterov", False)),
        alpha=_num(group.get("alpha", 0.99)),
        centered=bool(group.get("centered", False)),
    )


def _adam_kind(groups: list[dict], kind: str, notes: list[str]) -> str:
    if kind != "auto":
        return kind
    if any(g.get("decoupled_weight_decay") for g in groups):
        return "adamw"
    decays = any(_num(g.get("weight_decay", 0.0)) > 0 for g in groups)
    if decays and not any("decoupled_weight_decay" in g for g in groups):
        notes.append(
            "the optimizer state has weight decay but does not say whether it was Adam or "
            "AdamW (torch < 2.6); assuming Adam: pass `optimizer` adamw if not"
        )
    return "adam"


def read_optimizer(
    optimizer_sd: dict,
    named_shapes: dict[str, tuple[int, ...]],
    kind: str = "auto",
    order: str | None = None,
) -> OptimizerState | None:
    """The state of an Adam/AdamW, momentum-SGD or RMSprop ``torch.optim`` state dict by name,
    or None where it holds no moments (SGD without momentum, no step taken yet) or another
    optimizer's (NAdam, RAdam, Adamax...: ``optimizer_kind.kind_of`` names it).

    ``named_shapes`` are the model's parameters in ``named_parameters()`` order. ``kind``
    ('auto', 'adam', 'adamw') overrides Adam versus AdamW; ``order`` ('model', 'nanogpt',
    'hf') settles which parameter each index is where the shapes leave it ambiguous. Raises
    ``InputError`` where no ordering, or more than one, fits every moment's shape.
    """
    if kind not in KINDS:
        raise InputError(f"unknown optimizer kind {kind!r}: use one of {', '.join(KINDS)}")
    state, groups = _groups(optimizer_sd)
    indices = [i for g in groups for i in g.get("params", [])]
    listed = set(indices)
    stray = [i for i in state if i not in listed]
    if stray:
        raise InputError(f"optimizer state has index {stray[0]} that no param group lists")
    entries = [state.get(i) if isinstance(state.get(i), dict) else {} for i in indices]
    family = optimizer_kind({k for e in entries for k in e}, groups)
    if family not in READ:  # no moments, or another optimizer's (optimizer_kind)
        return None
    notes: list[str] = []
    moments = [[e[k] for k in _MOMENTS if isinstance(e.get(k), Tensor)] for e in entries]
    stored = [n for g in groups for n in g.get("param_names", [])]
    if not stored and indices and all(isinstance(i, str) for i in indices):
        stored = list(indices)  # keyed by name (torch.distributed.checkpoint, FSDP): the map
    sizes = [len(g.get("params", [])) for g in groups]
    names, how = resolve_order(sizes, stored, moments, dict(named_shapes), order)
    hypers = [_hyper(g) for g in groups for _ in g.get("params", [])]
    if family in ("sgd", "rmsprop"):
        out = OptimizerState(family, [], {}, order=how, notes=notes)
        if kind != "auto":
            notes.append(f"`optimizer` {kind} ignored: the optimizer state is "
                         f"{'SGD' if family == 'sgd' else 'RMSprop'}'s")
    else:
        out = OptimizerState(_adam_kind(groups, kind, notes), [], {}, order=how, notes=notes)
    for name, entry, hyper in zip(names, entries, hypers):
        if family == "adam":
            if "exp_avg" not in entry or "exp_avg_sq" not in entry:
                continue
            if hyper.amsgrad and "max_exp_avg_sq" not in entry:
                raise InputError(f"the amsgrad state of {name} has no max_exp_avg_sq")
            out.exp_avg[name], out.exp_avg_sq[name] = entry["exp_avg"], entry["exp_avg_sq"]
            if hyper.amsgrad:
                out.max_exp_avg_sq[name] = entry["max_exp_avg_sq"]
            out.steps[name] = _num(entry.get("step", 0.0))
        elif family == "rmsprop":
            if "square_avg" not in entry:
                continue
            wanted = (("grad_avg", hyper.centered), ("momentum_buffer", hyper.momentum > 0))
            for key, needed in wanted:
                if needed and not isinstance(entry.get(key), Tensor):
                    raise InputError(f"the RMSprop state of {name} has no {key}")
            out.square_avg[name] = entry["square_avg"]
            if hyper.centered:
                out.grad_avg[name] = entry["grad_avg"]
            if hyper.momentum > 0:
                out.momentum_buffer[name] = entry["momentum_buffer"]
            out.steps[name] = _num(entry.get("step", 0.0))
        elif "momentum_buffer" in entry:
            out.momentum_buffer[name] = entry["momentum_buffer"]
        else:
            continue
        out.covered.append(name)
        out.hyper[name] = hyper
    if not out.covered:
        return None
    if how not in ("model", "param_names"):
        notes.append(f"optimizer parameters matched to the model in {how!r} order")
    if len(out.covered) < len(named_shapes):
        shown = ", ".join(out.covered[:4]) + (", ..." if len(out.covered) > 4 else "")
        notes.append(
            f"the optimizer state covers {len(out.covered)} of {len(named_shapes)} parameters "
            f"({shown}); the others take no step"
        )
    return out


def describe_optimizer(optimizer_sd: dict) -> dict[str, Any]:
    """A JSON-friendly summary of an optimizer state dict (for ``landscape inspect``)."""
    state, groups = _groups(optimizer_sd)
    keys = sorted(state_keys(state))
    steps = [_num(e["step"]) for e in state.values() if isinstance(e, dict) and "step" in e]
    kind = optimizer_kind(set(keys), groups) or "unknown"
    if kind == "adam" and any(g.get("decoupled_weight_decay") for g in groups):
        kind = "adamw"
    hyper = [
        {
            k: v
            for k, v in g.items()
            if k not in ("params", "param_names") and isinstance(v, (int, float, bool, str, tuple))
        }
        for g in groups
    ]
    return {
        "kind": kind,
        "n_param_groups": len(groups),
        "n_params": sum(len(g.get("params", [])) for g in groups),
        "n_params_with_state": len(state),
        "state_keys": keys,
        "step": max(steps) if steps else None,
        "param_groups": hyper,
    }
