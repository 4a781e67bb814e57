"""One measured row of the benchmark table and its accuracy against the reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.measure import Measurement
from benchmarks.reference import Reference, wasserstein1


@dataclass
class Row:
    """Workload, task key (``question[:variant]``), tool, and what :func:`measure` found."""

    workload: str
    key: str
    tool: str
    m: Measurement
    accuracy: float | None = None  # relative error (top-k, trace) or W1 / range (density)
    result: str = ""

    @property
    def question(self) -> str:
        return self.key.split(":")[0]

    @property
    def label(self) -> str:
        variant = self.key.split(":")[1] if ":" in self.key else ""
        return f"{self.tool} ({variant})" if variant else self.tool

    @property
    def matvecs(self) -> int | None:
        return self.m.answer.matvecs if self.m.ok and self.m.answer else None


def score(row: Row, ref: Reference) -> None:
    """Fill ``row.accuracy`` and ``row.result`` from its answer and the reference."""
    a = row.m.answer
    if not row.m.ok or a is None:
        row.result = f"FAILED: {row.m.error}"
        return
    q = row.question
    if q in ("top1", "top5"):
        k = 1 if q == "top1" else 5
        vals = np.asarray(a.values, dtype=np.float64)[:k]
        if vals.size < k:
            row.result = f"only {vals.size} values"
            return
        want = ref.top[:k]
        if want.size < k:  # no reference (--no-reference)
            row.result = ", ".join(f"{v:.5g}" for v in vals[:2]) + ("..." if k > 2 else "")
            return
        row.accuracy = float(np.max(np.abs(vals - want) / np.abs(want)))
        row.result = ", ".join(f"{v:.5g}" for v in vals[:2]) + ("..." if k > 2 else "")
    elif q == "trace":
        est = float(a.values[0])
        row.accuracy = abs(est - ref.trace) / abs(ref.trace) if np.isfinite(ref.trace) else None
        row.result = f"{est:.5g}"
    elif q == "slq":
        if ref.spectrum is not None and a.weights is not None:
            row.accuracy = wasserstein1(a.values, a.weights, ref.spectrum)
        row.result = f"{int(np.sum(a.weights > 0)) if a.weights is not None else 0} nodes"
    if a.note:
        row.result += f" ({a.note})"
