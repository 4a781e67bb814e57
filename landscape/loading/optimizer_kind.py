"""Which ``torch.optim`` optimizer a state dict came from, by the names of its per-parameter state.

Adam's state is exactly {step, exp_avg, exp_avg_sq[, max_exp_avg_sq]}, SGD's {momentum_buffer}
and RMSprop's {step, square_avg[, momentum_buffer][, grad_avg]}. Every other optimizer adds a
key of its own (NAdam's ``mu_product``, Adamax's ``exp_inf``, Adadelta's ``acc_delta`` beside a
``square_avg``), or, for RAdam, which stores Adam's keys, a param group with
``decoupled_weight_decay`` but no ``amsgrad``. Reading a superset as one of the three would take
its step, preconditioner and stability threshold from the wrong rule, so anything else is named,
not read.
"""

from __future__ import annotations

from typing import Any

ADAM_KEYS = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
SGD_KEYS = frozenset({"momentum_buffer"})
RMSPROP_KEYS = frozenset({"step", "square_avg", "momentum_buffer", "grad_avg"})

# a key no Adam or SGD state holds -> the optimizer it marks (the first match names it)
_MARKS = (
    ("mu_product", "nadam"),
    ("exp_inf", "adamax"),
    ("acc_delta", "adadelta"),
    ("square_avg", "rmsprop"),
    ("sum", "adagrad"),
    ("ax", "asgd"),
    ("step_size", "rprop"),
    ("variance", "adafactor"),
)

NAMES = {"adam": "Adam", "sgd": "SGD", "radam": "RAdam", "nadam": "NAdam", "adamax": "Adamax",
         "adadelta": "Adadelta", "rmsprop": "RMSprop", "adagrad": "Adagrad", "asgd": "ASGD",
         "rprop": "Rprop", "adafactor": "Adafactor"}


def display_name(kind: str | None) -> str:
    """The optimizer's name as a sentence uses it ('RMSprop', 'an unknown optimizer')."""
    return NAMES.get(kind or "", "an unknown optimizer")


def state_keys(state: dict) -> set[str]:
    """The union of the per-parameter state keys of a state dict's ``state``."""
    return {k for entry in state.values() if isinstance(entry, dict) for k in entry}


def optimizer_kind(keys: set[str], groups: list[dict]) -> str | None:
    """'adam', 'sgd', 'rmsprop', another optimizer's name (see ``_MARKS``; 'radam', or
    'unknown' where nothing names it, Lion's lone exp_avg say), or None where there are no
    moments at all (SGD without momentum, or no step taken yet).

    Args:
        keys: the state keys (:func:`state_keys`).
        groups: the state dict's ``param_groups``.
    """
    if not keys - {"step"}:
        return None
    if "exp_avg" in keys and "exp_avg_sq" in keys and keys <= ADAM_KEYS:
        radam = any("decoupled_weight_decay" in g and "amsgrad" not in g for g in groups)
        return "radam" if radam else "adam"
    if keys <= SGD_KEYS:
        return "sgd"
    if "square_avg" in keys and keys <= RMSPROP_KEYS:
        return "rmsprop"
    return next((name for key, name in _MARKS if key in keys), "unknown")


def kind_of(optimizer_sd: Any) -> str | None:
    """:func:`optimizer_kind` of a whole state dict (None for anything that is not one)."""
    if not isinstance(optimizer_sd, dict):
        return None
    state, groups = optimizer_sd.get("state"), optimizer_sd.get("param_groups")
    if not isinstance(state, dict) or not isinstance(groups, list):
        return None
    return optimizer_kind(state_keys(state), [g for g in groups if isinstance(g, dict)])
