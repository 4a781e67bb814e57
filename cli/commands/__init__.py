"""One module per command, each listing its click commands in ``COMMANDS``; found automatically."""

from __future__ import annotations

import importlib
import pkgutil

import click

ORDER = ["inspect", "spectrum", "blocks", "trace", "sharpness", "ghost", "lmc", "surface", "track", "check"]


def _discover() -> list[click.Command]:
    found: list[click.Command] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "COMMANDS", []))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda c: (rank.get(c.name or "", len(ORDER)), c.name or ""))


COMMANDS = _discover()
