"""Which model parameter each position of a ``torch.optim`` state dict refers to.

torch.optim numbers the parameters 0, 1, ... across its param groups in group order
(``Optimizer.state_dict``), not in ``model.named_parameters()`` order. Where the groups store
``param_names`` (torch >= 2.6 given named parameters) those decide. Otherwise the orderings that
training code actually uses are tried, each over the whole model or over a contiguous run of it
(an optimizer over a head): ``model`` order; ``nanogpt`` (parameters with ndim >= 2, then the
rest); ``hf`` (Hugging Face Trainer: names without bias/norm, then those with them). An ordering
fits when every stored moment has its parameter's shape; exactly one distinct fit is accepted.
"""

from __future__ import annotations

import re
from itertools import accumulate

from torch import Tensor

from landscape.errors import InputError

RECIPES = ("model", "nanogpt", "hf")
_WRAPPERS = ("module.", "_orig_mod.")
_NO_DECAY = re.compile(r"bias|norm|(^|\.)ln(_\w+|\d+)?\.")


def _unwrap(name: str) -> str:
    while name.startswith(_WRAPPERS):
        name = name.split(".", 1)[1]
    return name


def _arrange(recipe: str, window: list[str], shapes: dict) -> tuple[list[str], int | None]:
    """``window`` in the recipe's order, and where its second group starts (None: no split)."""
    if recipe == "model":
        return list(window), None
    if recipe == "nanogpt":
        first = [n for n in window if len(shapes[n]) >= 2]
    else:
        first = [n for n in window if not _NO_DECAY.search(n.lower())]
    rest = [n for n in window if n not in set(first)]
    return first + rest, len(first)


def _fits(names: list[str], moments: list[list[Tensor]], shapes: dict) -> bool:
    return all(
        tuple(t.shape) == tuple(shapes[n]) for n, ts in zip(names, moments) for t in ts
    )


def _stored_names(stored: list[str], shapes: dict) -> list[str]:
    """The groups' ``param_names`` as model names: wrapper prefixes and a shared first
    component (the attribute a Lightning module keeps the network under) are dropped."""
    names = [_unwrap(n) for n in stored]
    while not all(n in shapes for n in names):
        heads = {n.split(".", 1)[0] for n in names}
        if len(heads) != 1 or not all("." in n for n in names):
            bad = [n for n in names if n not in shapes]
            raise InputError(
                f"the optimizer's stored parameter names are not the model's "
                f"({', '.join(bad[:3])}); was it saved for another model?"
            )
        names = [_unwrap(n.split(".", 1)[1]) for n in names]
    return names


def _check(names: list[str], moments: list[list[Tensor]], shapes: dict) -> None:
    for n, ts in zip(names, moments):
        for t in ts:
            if tuple(t.shape) != tuple(shapes[n]):
                raise InputError(
                    f"the optimizer state for {n} has shape {tuple(t.shape)} but the parameter "
                    f"has {tuple(shapes[n])}; was it saved for another model?"
                )


def resolve_order(
    sizes: list[int],
    stored: list[str],
    moments: list[list[Tensor]],
    shapes: dict[str, tuple[int, ...]],
    order: str | None = None,
) -> tuple[list[str], str]:
    """Model names of the optimizer's positions 0..K-1, and the ordering that gave them.

    ``sizes`` are the param groups' lengths, ``stored`` their ``param_names`` (empty if not
    saved), ``moments[p]`` the state tensors of position p, ``shapes`` the model's parameters in
    ``named_parameters()`` order. ``order`` ('model', 'nanogpt', 'hf') forces one recipe;
    stored names win over it.
    """
    total = sum(sizes)
    if stored and len(stored) == total:
        names = _stored_names(stored, shapes)
        _check(names, moments, shapes)
        return names, "param_names"
    if order is not None and order not in RECIPES:
        raise InputError(f"unknown optimizer order {order!r}: use one of {', '.join(RECIPES)}")
    model = list(shapes)
    if total > len(model):
        raise InputError(
            f"the optimizer state lists {total} parameters but the model has {len(model)}; "
            "was it saved for another model?"
        )
    bounds = set(accumulate(sizes))
    fits: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for recipe in [order] if order else RECIPES:
        for start in range(len(model) - total + 1):
            names, split = _arrange(recipe, model[start : start + total], shapes)
            if split is not None and 0 < split < total and split not in bounds:
                continue  # the recipe's two groups must be the optimizer's groups
            if _fits(names, moments, shapes):
                fits.setdefault(tuple(names), []).append((recipe, start))
    if not fits:
        tried = order or "/".join(RECIPES)
        raise InputError(
            f"no ordering of the model's parameters ({tried}) matches the shapes of the "
            f"optimizer state's {total} parameters; was it saved for another model? "
            "(`use_optimizer=False` leaves it out)"
        )
    if len(fits) > 1:
        where = [places[0] for places in fits.values()]
        recipes = sorted({r for r, _ in where})
        if len(recipes) > 1:
            raise InputError(
                f"the optimizer state fits more than one parameter ordering "
                f"({', '.join(recipes)}): choose with `optimizer_order` "
                f"{'|'.join(recipes)} or leave it out with `use_optimizer=False`"
            )
        starts = ", ".join(model[s] for _, s in where[:3])
        raise InputError(
            f"the optimizer's {total} parameters fit {len(where)} places in the model (from "
            f"{starts}): save it with named parameters (torch >= 2.6) or `use_optimizer=False`"
        )
    (names, places), = fits.items()
    # recipes that arrange this model alike (nanoGPT's and the Trainer's on GPT-2) are one answer
    recipes = list(dict.fromkeys(r for r, _ in places))
    return list(names), "model" if "model" in recipes else "/".join(recipes)
