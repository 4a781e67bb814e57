"""Output files: default names that do not clobber another run, and a result with its plot
written together (both or neither).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import interrupt

if TYPE_CHECKING:
    from landscape.results import Result, RunInfo


def stored_checkpoints(path: str) -> list[str] | None:
    """The sha256 of each checkpoint in ``path``'s ``/checkpoints`` group, in order; None when
    ``path`` is no readable result file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("checkpoints")
            if not isinstance(group, h5py.Group):
                return None
            keys = sorted(group, key=lambda k: int(k) if k.isdigit() else -1)
            return [str(group[k].attrs.get("sha256", "")) for k in keys]
    except (OSError, ValueError):
        return None


def free_default(path: str, sha256: list[str]) -> str:
    """``path``, or ``stem-2.h5``, ``stem-3.h5``...: the first that is free or holds a result of
    the same checkpoints (``sha256``, in order), so that running again replaces (or, for
    ``surface``, resumes) its own result and never another checkpoint's."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 1
    while os.path.exists(candidate) and stored_checkpoints(candidate) != sha256:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    return candidate


def temp_beside(path: str) -> str:
    """A hidden name in ``path``'s folder with its extension (what the plot's format follows)."""
    directory, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    return os.path.join(directory, f".{stem}.{os.getpid()}.tmp{ext}")


def write_together(out: str, result: Result, run: RunInfo, figure: str | None) -> None:
    """Write the result (and draw its plot) under temporary names, then rename both into place
    in a block that Ctrl-C does not cut: both files appear, or neither does."""
    from landscape.plots import draw
    from landscape.results import check_result_path, read_result, write_result

    check_result_path(out)
    temps = [temp_beside(out)] + ([temp_beside(figure)] if figure else [])
    try:
        write_result(temps[0], result, run)
        if figure:
            os.makedirs(os.path.dirname(os.path.abspath(figure)), exist_ok=True)
            draw(read_result(temps[0]), temps[1])
        with interrupt.deferred():
            if figure:
                os.replace(temps[1], figure)
            os.replace(temps[0], out)
            interrupt.state.written = [out] + ([figure] if figure else [])
    finally:
        with interrupt.deferred():
            for path in temps:
                if os.path.exists(path):
                    os.remove(path)


def draw_into(content: dict, figure: str) -> None:
    """Draw a plot under a temporary name and rename it into place: no half-drawn PNG."""
    from landscape.plots import draw

    temp = temp_beside(figure)
    try:
        draw(content, temp)
        os.replace(temp, figure)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
