"""Match a checkpoint's state dict to a model and load it strictly.

Keys are renamed first: DataParallel/DDP's ``module.`` and torch.compile's ``_orig_mod.``
prefixes are stripped, and so is a first dotted component shared by every key (Lightning's
attribute name, e.g. ``model.``) when that makes the keys match the model better.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from landscape.errors import InputError
from landscape.loading.imports import one_line

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _strip(keys: list[str]) -> dict[str, str]:
    """Map each key to itself with DataParallel/DDP and torch.compile prefixes removed."""
    out = {}
    for key in keys:
        new = key
        while new.startswith(_WRAPPER_PREFIXES):
            new = new.split(".", 1)[1]
        out[key] = new
    return out


def match_keys(state_dict: dict[str, Tensor], model_keys: list[str]) -> dict[str, Tensor]:
    """Rename ``state_dict`` keys to the model's: strip ``module.``/``_orig_mod.`` and a first
    dotted component shared by all keys (Lightning's attribute name) when that matches better."""
    wanted = set(model_keys)
    renamed = dict(zip(_strip(list(state_dict)).values(), state_dict.values(), strict=True))
    while set(renamed) != wanted:
        heads = {k.split(".", 1)[0] for k in renamed}
        if len(heads) != 1 or not all("." in k for k in renamed):
            break
        shorter = {k.split(".", 1)[1]: v for k, v in renamed.items()}
        shorter = dict(zip(_strip(list(shorter)).values(), shorter.values(), strict=True))
        if len(set(shorter) & wanted) <= len(set(renamed) & wanted):
            break
        renamed = shorter
    return renamed


def _few(names: list[str], n: int = 5) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def load_into(model: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Load ``state_dict`` into ``model`` strictly (parameters and buffers).

    Raises ``InputError`` naming missing or unexpected keys, a parameter whose shapes differ,
    or a tensor holding NaN/inf.
    """
    target = model.state_dict()
    sd = match_keys(state_dict, list(target))
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    if missing:
        raise InputError(f"checkpoint is missing {len(missing)} model key(s): {_few(missing)}")
    if unexpected:
        raise InputError(f"checkpoint has {len(unexpected)} unexpected key(s): {_few(unexpected)}")
    for name, value in sd.items():
        if tuple(value.shape) != tuple(target[name].shape):
            raise InputError(
                f"shape mismatch for {name}: checkpoint has {tuple(value.shape)}, "
                f"model has {tuple(target[name].shape)}"
            )
        if value.is_floating_point() or value.is_complex():
            if not bool(torch.isfinite(value).all()):
                raise InputError(f"tensor {name} in the checkpoint holds NaN or inf values")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise InputError(f"loading the state dict failed: {one_line(exc)}") from exc
