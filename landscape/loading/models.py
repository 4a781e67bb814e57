"""Build an ``nn.Module`` from a model spec: a zoo name or a ``module:factory`` spec."""

from __future__ import annotations

from typing import Any

from torch import nn

from landscape.errors import InputError
from landscape.loading.imports import import_object, is_object_spec, one_line
from landscape.loading.zoo import ZOO


def build_model(
    spec: str, kwargs: dict[str, Any] | None = None, base_dir: str | None = None
) -> nn.Module:
    """Construct the model named by ``spec`` with ``kwargs``.

    ``spec`` is a built-in zoo name (see ``ZOO``), ``pkg.module:factory`` or
    ``path/to/file.py:factory`` (relative paths are tried against ``base_dir``, then the
    working directory). The factory may be a class or a function. Every failure (import,
    missing attribute, factory raising, result not a module) raises ``InputError``.
    """
    kwargs = dict(kwargs or {})
    if not isinstance(spec, str) or not spec:
        raise InputError(f"model spec must be a non-empty string, got {spec!r}")
    if spec in ZOO:
        factory = ZOO[spec]
    elif is_object_spec(spec):
        factory = import_object(spec, base_dir)
    else:
        raise InputError(
            f"unknown model {spec!r}: expected a zoo name ({', '.join(sorted(ZOO))}), "
            "pkg.module:factory or path/to/file.py:factory"
        )
    if not callable(factory):
        raise InputError(f"model factory {spec!r} is not callable")
    try:
        model = factory(**kwargs)
    except InputError:
        raise
    except Exception as exc:  # user code: any failure is bad input
        raise InputError(
            f"model factory {spec!r} raised with kwargs {kwargs}: {one_line(exc)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise InputError(
            f"model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
