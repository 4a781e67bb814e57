"""Read Adam/AdamW state out of a ``torch.optim`` state dict, keyed by parameter name.

torch.optim stores per-parameter state under integer indices: the position of the parameter
in the list given to the optimizer, counted across param groups in order. ``adam_state``
maps those indices to the model's parameter names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from landscape.errors import InputError


@dataclass
class AdamState:
    """Adam's moment estimates per parameter name, plus the hyperparameters of the step."""

    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]
    step: float
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    amsgrad: bool
    kind: str  # 'adam' or 'adamw'


def _groups(optimizer_sd: Any) -> tuple[dict, list[dict]]:
    if not isinstance(optimizer_sd, dict) or "param_groups" not in optimizer_sd:
        raise InputError("optimizer state is not a torch.optim state_dict (no 'param_groups')")
    state = optimizer_sd.get("state") or {}
    groups = optimizer_sd["param_groups"]
    if not isinstance(state, dict) or not isinstance(groups, list) or not groups:
        raise InputError("optimizer state_dict has malformed 'state' or empty 'param_groups'")
    return state, groups


def _step(entry: dict) -> float:
    step = entry.get("step", 0.0)
    return float(step.item() if isinstance(step, Tensor) else step)


def _hyper(group: dict) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in ("params", "param_names")}


def adam_state(optimizer_sd: dict, param_names: list[str]) -> AdamState | None:
    """Adam/AdamW state keyed by name, or ``None`` if the optimizer kept no Adam moments.

    ``param_names`` are the names of the parameters given to the optimizer, in the order
    given (usually ``[n for n, p in model.named_parameters()]``). When the param groups store
    ``param_names`` themselves (torch >= 2.6 with named parameters), those are used instead.
    Hyperparameters come from the first param group.
    """
    state, groups = _groups(optimizer_sd)
    indices = [i for g in groups for i in g.get("params", [])]
    stored = [n for g in groups for n in g.get("param_names", [])]
    names = stored if len(stored) == len(indices) and stored else list(param_names)
    if len(indices) != len(names):
        raise InputError(
            f"optimizer state covers {len(indices)} parameters but {len(names)} parameter "
            "names were given; was the optimizer built over a different parameter list?"
        )
    by_index = {i: n for i, n in zip(indices, names, strict=True)}
    exp_avg: dict[str, Tensor] = {}
    exp_avg_sq: dict[str, Tensor] = {}
    steps: list[float] = []
    for index, entry in state.items():
        if not isinstance(entry, dict) or "exp_avg" not in entry or "exp_avg_sq" not in entry:
            continue
        if index not in by_index:
            raise InputError(f"optimizer state has index {index} that no param group lists")
        exp_avg[by_index[index]] = entry["exp_avg"]
        exp_avg_sq[by_index[index]] = entry["exp_avg_sq"]
        steps.append(_step(entry))
    if not exp_avg:
        return None
    group = groups[0]
    betas = tuple(float(b) for b in group.get("betas", (0.9, 0.999)))
    return AdamState(
        exp_avg=exp_avg,
        exp_avg_sq=exp_avg_sq,
        step=max(steps),
        lr=float(group.get("lr", 0.0)),
        betas=(betas[0], betas[1]),
        eps=float(group.get("eps", 1e-8)),
        weight_decay=float(group.get("weight_decay", 0.0)),
        amsgrad=bool(group.get("amsgrad", False)),
        kind="adamw" if group.get("decoupled_weight_decay") else "adam",
    )


def describe_optimizer(optimizer_sd: dict) -> dict[str, Any]:
    """A JSON-friendly summary of an optimizer state dict (for ``landscape inspect``)."""
    state, groups = _groups(optimizer_sd)
    keys = sorted({k for entry in state.values() if isinstance(entry, dict) for k in entry})
    steps = [_step(e) for e in state.values() if isinstance(e, dict) and "step" in e]
    if "exp_avg" in keys:
        kind = "adamw" if groups[0].get("decoupled_weight_decay") else "adam"
    elif "momentum_buffer" in keys:
        kind = "sgd"
    else:
        kind = "unknown"
    hyper = [
        {k: v for k, v in _hyper(g).items() if isinstance(v, (int, float, bool, str, tuple))}
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
