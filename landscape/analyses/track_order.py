"""The checkpoints of a training run in training order.

By the step stored in each (the first of ``step``, ``global_step``, ``iteration``, ``iter_num``
(nanoGPT's), ``epoch`` in its top-level metadata; a Hugging Face Trainer folder's
``global_step``) when every checkpoint has one; else naturally by file name (``ckpt_2`` before
``ckpt_10``), the step then being the position in that order.
"""

from __future__ import annotations

import glob
import os
import re

from ..errors import InputError
from ..loading.checkpoints import load_checkpoint

STEP_KEYS = ("step", "global_step", "iteration", "iter_num", "epoch")


def natural_key(path: str) -> list[object]:
    """``ckpt_10.pt`` after ``ckpt_2.pt``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


def expand(patterns: list[str]) -> list[str]:
    """Paths, with glob patterns (``runs/ckpt_*.pt``) expanded; each path once."""
    out: list[str] = []
    for p in patterns:
        hits = sorted(glob.glob(p), key=natural_key) if glob.has_magic(p) else [p]
        if not hits:
            raise InputError(f"no checkpoint matches {p!r}")
        out.extend(h for h in hits if h not in out)
    return out


def order(paths: list[str], trust: bool = False) -> tuple[list[tuple[str, float, str]], str]:
    """[(path, step, sha256)] in training order, and where the steps came from (a key, or
    ``name``)."""
    found = []
    for p in expand([os.fspath(x) for x in paths]):
        ckpt = load_checkpoint(p, trust=trust)
        meta = ckpt.metadata or {}
        key = next((k for k in STEP_KEYS if isinstance(meta.get(k), (int, float))
                    and not isinstance(meta.get(k), bool)), None)
        found.append((p, key, float(meta[key]) if key else None, ckpt.sha256))
    if not found:
        raise InputError("no checkpoints to track")
    keys = {k for _, k, _, _ in found}
    if len(keys) == 1 and None not in keys:
        found.sort(key=lambda f: (f[2], natural_key(f[0])))
        return [(p, s, h) for p, _, s, h in found], str(next(iter(keys)))
    found.sort(key=lambda f: natural_key(f[0]))
    return [(p, float(i), h) for i, (p, _, _, h) in enumerate(found)], "name"
