"""Adapters: one per tool, each turning the benchmark questions into calls of that tool.

An adapter module defines ``NAME``, ``available() -> bool``, ``version() -> str`` and
``tasks(workload, settings) -> dict[str, Task]``. Task keys are ``question`` or
``question:variant`` with question one of ``top1``, ``top5``, ``trace``, ``slq``, ``hvp``,
``grad``, ``block``, ``singles`` (see ``benchmarks/README.md``). Every task is a zero-argument
callable returning a :class:`benchmarks.measure.Answer` whose ``matvecs`` the adapter counted
by wrapping the tool's own Hessian-vector product.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from benchmarks.measure import Answer

Task = Callable[[], Answer]

MODULES = ("landscape_", "pyhessian_", "eigenthings_", "curvlinops_")


@dataclass(frozen=True)
class Settings:
    """The questions' parameters, the same for every tool."""

    tol: float = 1e-3
    trace_budget: int = 60
    slq_steps: int = 100
    block_k: int = 16
    seed: int = 0


def load_all() -> list[ModuleType]:
    """The adapter modules, in table order (ours first)."""
    return [importlib.import_module(f"benchmarks.adapters.{m}") for m in MODULES]
