"""Matplotlib figures drawn from result files' contents (never recomputing anything).

One module per command, named after it (``plots/spectrum.py`` for ``spectrum``), each with
``plot(content, path)`` where ``content`` is ``results.read_result(file)``. ``draw`` finds it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import InputError


def draw(content: dict[str, Any], path: str) -> None:
    """Draw the figure of a result (as read back from its file) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    command = str(content.get("command", ""))
    try:
        module = importlib.import_module(f"{__name__}.{command}")
    except ModuleNotFoundError:
        raise InputError(f"no plot is defined for results of {command or 'unknown'!r}") from None
    module.plot(content, path)
