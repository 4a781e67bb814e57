"""Matplotlib figures drawn from result files' contents (never recomputing anything).

One module per command, named after it (``plots/spectrum.py`` for ``spectrum``), each with
``plot(content, path)`` where ``content`` is ``results.read_result(file)``. ``draw`` finds it.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import InputError


def draw(content: dict[str, Any], path: str, **options: Any) -> None:
    """Draw the figure of a result (as read back from its file) into ``path``; ``options``
    (e.g. ``levels``, ``log``, ``vmax`` of the surface plot) go to plots that take them."""
    from .. import distributed

    if not distributed.is_main():  # rank 0 alone draws
        return
    import matplotlib

    matplotlib.use("Agg")
    command = str(content.get("command", ""))
    try:
        module = importlib.import_module(f"{__name__}.{command}")
    except ModuleNotFoundError:
        raise InputError(f"no plot is defined for results of {command or 'unknown'!r}") from None
    if options:
        import inspect

        known = inspect.signature(module.plot).parameters
        unknown = [k for k in options if k not in known]
        if unknown:
            names = ", ".join("--" + k for k in unknown)
            raise InputError(f"{names}: not an option of the {command} plot")
    module.plot(content, path, **options)


def checkpoint_names(content: dict[str, Any]) -> list[str]:
    """File names of the checkpoints a result was computed from, in order (``/checkpoints``)."""
    group = content.get("checkpoints") or {}
    keys = sorted(group, key=lambda k: int(k) if str(k).isdigit() else 0)
    return [os.path.basename(str(group[k].get("path", ""))) for k in keys if group[k].get("path")]


def source_name(content: dict[str, Any]) -> str:
    """What a figure's title names: the checkpoint file (and the next one, if any), else the
    model spec for files written before checkpoints were recorded."""
    names = checkpoint_names(content)
    if not names:
        return str(content.get("model", "")) or "?"
    return names[0] + (f" (next: {', '.join(names[1:])})" if len(names) > 1 else "")
