"""Match a checkpoint's state dict to a model and load it strictly.

Keys are renamed first: DataParallel/DDP's ``module.`` and torch.compile's ``_orig_mod.``
prefixes are stripped, and the model's keys are looked for under the prefix that holds all of
them (Lightning's attribute name, e.g. ``net.``), even when other keys sit beside them (a
weighted criterion's ``criterion.weight``): those are ignored and named in a note. A key the
model ties to another (``lm_head.weight`` is ``transformer.wte.weight``), which the file holds
once, is filled from its twin.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from landscape.errors import InputError
from landscape.loading.imports import one_line

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrap(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _few(names: list[str], n: int = 5) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def tied_keys(model: nn.Module) -> dict[str, list[str]]:
    """Each state-dict key of ``model`` -> the other keys holding the same tensor: the same
    Parameter object, or a view of the same storage with the same shape, stride and offset."""
    groups: dict[tuple, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if value.device.type == "meta" or value.numel() == 0:
            ident: tuple = (id(value),)
        else:
            ptr = value.untyped_storage().data_ptr()
            ident = (ptr, value.storage_offset(), tuple(value.shape), tuple(value.stride()))
        groups.setdefault(ident, []).append(key)
    return {k: [o for o in ks if o != k] for ks in groups.values() for k in ks}


def _candidates(keys: list[str], wanted: set[str]) -> dict[str, set[str]]:
    """prefix -> the model keys found under it (wrappers stripped after the prefix too)."""
    found: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split(".")
        for i in range(len(parts)):
            prefix = ".".join(parts[:i]) + "." if i else ""
            if prefix.endswith(_WRAPPER_PREFIXES):
                continue  # the shorter prefix reaches the same key through _unwrap
            rest = _unwrap(key[len(prefix) :])
            if rest in wanted:
                found.setdefault(prefix, set()).add(rest)
    return found


def _choose_prefix(keys: list[str], wanted: list[str], ties: dict[str, list[str]]) -> str:
    found = _candidates(keys, set(wanted))

    def covered(prefix: str) -> int:
        have = found[prefix]
        return sum(k in have or any(t in have for t in ties.get(k, [])) for k in wanted)

    full = [p for p in found if covered(p) == len(wanted)]
    if "" in full or not found:
        return ""
    if len(full) == 1:
        return full[0]
    if len(full) > 1:
        shown = ", ".join(repr(p) for p in sorted(full)[:3])
        raise InputError(
            f"the checkpoint holds all the model's keys under several prefixes ({shown}): "
            "choose one with `state_prefix`"
        )
    return max(sorted(found, key=len), key=covered)


def _match(
    state_dict: dict[str, Tensor],
    model_keys: list[str],
    ties: dict[str, list[str]],
    prefix: str | None,
) -> tuple[dict[str, Tensor], str, list[str]]:
    """(the keys under the prefix, renamed to the model's; the prefix; the keys ignored)."""
    keys = [_unwrap(k) for k in state_dict]
    values = dict(zip(keys, state_dict.values(), strict=True))
    if prefix is None:
        prefix = _choose_prefix(keys, model_keys, ties)
    elif prefix and not prefix.endswith("."):
        prefix += "."
    inside = {_unwrap(k[len(prefix) :]): v for k, v in values.items() if k.startswith(prefix)}
    if not inside:
        raise InputError(f"no checkpoint key starts with the prefix {prefix!r}")
    return inside, prefix, [k for k in keys if not k.startswith(prefix)]


def match_keys(
    state_dict: dict[str, Tensor], model_keys: list[str], prefix: str | None = None
) -> dict[str, Tensor]:
    """Rename ``state_dict`` keys to the model's: strip ``module.``/``_orig_mod.`` and keep the
    keys under ``prefix`` (by default the prefix holding all of ``model_keys``), prefix removed."""
    return _match(state_dict, model_keys, {}, prefix)[0]


def _missing_message(missing: list[str], prefix: str, ignored: list[str]) -> str:
    where = f" under the prefix {prefix!r}" if prefix else ""
    text = f"checkpoint is missing {len(missing)} model key(s){where}: {_few(missing)}"
    elsewhere = [k for k in ignored if any(k.endswith("." + m) for m in missing)]
    if elsewhere:
        text += f"; it holds {_few(elsewhere, 3)} under another prefix (see `state_prefix`)"
    return text


def load_into(
    model: nn.Module, state_dict: dict[str, Tensor], prefix: str | None = None
) -> list[str]:
    """Load ``state_dict`` into ``model`` strictly (parameters and buffers); returns notes.

    The model's keys are taken from under ``prefix`` (default: the prefix that holds all of
    them; keys beside it are ignored and listed in a note). A key missing from the file that the
    model ties to a present one is filled from it. Raises ``InputError`` naming missing or
    unexpected keys, a parameter whose shapes differ, or a tensor holding NaN/inf.
    """
    target = model.state_dict()
    ties = tied_keys(model)
    sd, prefix, ignored = _match(state_dict, list(target), ties, prefix)
    notes = []
    if ignored:
        notes.append(
            f"ignored {len(ignored)} checkpoint key(s) beside the model's (under "
            f"{prefix!r}): {_few(ignored)}"
        )
    for key in target:
        twin = next((t for t in ties.get(key, []) if t in sd), None)
        if key not in sd and twin is not None:
            sd[key] = sd[twin]
            notes.append(f"{key} is tied to {twin} in the model: filled from it")
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    if missing:
        raise InputError(_missing_message(missing, prefix, ignored))
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
    return notes
