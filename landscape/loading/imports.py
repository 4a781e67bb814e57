"""Resolve ``pkg.module:attr`` and ``path/to/file.py:attr`` specs to Python objects.

Shared by model specs (``models.py``), data specs (``data.py``) and loss specs. Relative file
paths are tried against ``base_dir`` first (usually the checkpoint's directory), then the
current working directory. A file's directory joins ``sys.path`` (at its end), so the modules
beside it import as they do when it runs as a script.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from landscape.errors import InputError


def one_line(exc: BaseException) -> str:
    """``ExcType: first line of the message`` — an exception squeezed onto one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def is_object_spec(spec: str) -> bool:
    """Whether ``spec`` looks like ``module:attr`` or ``file.py:attr``."""
    if ":" not in spec:
        return False
    left, _, right = spec.rpartition(":")
    return bool(left) and bool(right) and all(p.isidentifier() for p in right.split("."))


def resolve_path(path: str, base_dir: str | None = None) -> str | None:
    """The first existing candidate for ``path`` (absolute, under ``base_dir``, under cwd)."""
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    candidates = [os.path.join(base_dir, path)] if base_dir else []
    candidates.append(os.path.abspath(path))
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return None


def _import_file(path: str, base_dir: str | None) -> ModuleType:
    found = resolve_path(path, base_dir)
    if found is None:
        where = f" (looked in {base_dir!r} and the working directory)" if base_dir else ""
        raise InputError(f"Python file {path!r} not found{where}")
    if not os.path.isfile(found):
        raise InputError(f"{found!r} is not a file")
    found = os.path.abspath(found)
    digest = hashlib.sha1(found.encode()).hexdigest()[:12]
    name = f"_landscape_user_{os.path.splitext(os.path.basename(found))[0]}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, found)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {found!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    here = os.path.dirname(found)  # its sibling modules import as they do when it runs as a
    if here not in sys.path:  # script (nanoGPT's `from model import GPT`), behind installed ones
        sys.path.append(here)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code: any failure is bad input
        del sys.modules[name]
        raise InputError(f"importing {found!r} failed: {one_line(exc)}") from exc
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # user code: any failure is bad input
        raise InputError(f"cannot import module {name!r}: {one_line(exc)}") from exc


def import_object(spec: str, base_dir: str | None = None) -> Any:
    """Return the object named by ``pkg.module:attr`` or ``path/to/file.py:attr``.

    ``attr`` may be dotted (``module:Class.method``). Raises ``InputError`` when the module
    does not import (naming it and the exception) or the attribute is missing.
    """
    if not is_object_spec(spec):
        raise InputError(f"{spec!r} is not of the form pkg.module:name or path/to/file.py:name")
    left, _, attr = spec.rpartition(":")
    is_file = left.endswith(".py") or "/" in left or os.sep in left
    module = _import_file(left, base_dir) if is_file else _import_module(left)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{left!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
