"""The Result of ``check``: the analyses it ran (as their own groups) and the rules' outcomes.

Its file holds ``/spectrum``, ``/trace`` ... exactly as those commands write them, so it can be
the next check's baseline, plus ``/check`` (one entry per rule: text, value, threshold, margin,
passed, half-width, note); with several checkpoints, the later ones' groups go under
``/others/<i>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..analyses import ghost, inspect, lmc, sharpness, spectrum, trace
from ..results import Result, merge_trees
from .baseline import Outcome


def _descriptions() -> dict[str, str]:
    out: dict[str, str] = {}
    for cls in (inspect.InspectResult, spectrum.SpectrumResult, trace.TraceAnalysis,
                sharpness.SharpnessResult, ghost.GhostResult, lmc.LMCResult):
        out.update(cls.descriptions)
    out.update({
        "check/rules": "the rules, as given",
        "check/values": "each rule's metric value",
        "check/thresholds": "each rule's threshold (its VALUE, with the baseline put in)",
        "check/margins": "threshold - value for < <=, value - threshold for > >= (>= 0 holds)",
        "check/passed": "whether each rule holds (within the combined interval, for estimates)",
        "check/half_widths": "combined confidence half-width (NaN: an exact number)",
    })
    return out


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass
class CheckResult(Result):
    """``results[i]`` maps analysis name -> Result for the i-th checkpoint checked."""

    results: list[dict[str, Result]]
    outcomes: list[Outcome]
    reused: list[dict[str, Any]] = field(default_factory=list)  # groups read from --reuse
    matvecs: int = 0

    command: ClassVar[str] = "check"
    descriptions: ClassVar[dict[str, str]] = _descriptions()

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def _groups(self, i: int) -> dict[str, Any]:
        reused = self.reused[i] if i < len(self.reused) else {}
        skip = ("checkpoints", "check", "others")
        groups = {k: v for k, v in reused.items() if isinstance(v, dict) and k not in skip}
        trees = [groups] if groups else []  # the analyses' groups, not the old file's root
        return merge_trees(trees + [r.tree() for r in self.results[i].values()])

    def tree(self) -> dict[str, Any]:
        out = self._groups(0) if self.results else {}
        o = self.outcomes
        out["check"] = {
            "attrs": {"passed": "yes" if self.passed else "no"},
            "rules": [x.rule for x in o],
            "metrics": [x.metric for x in o],
            "checkpoints": [x.checkpoint for x in o],
            "values": np.array([x.value for x in o], dtype=np.float64),
            "thresholds": np.array([x.threshold for x in o], dtype=np.float64),
            "margins": np.array([x.margin for x in o], dtype=np.float64),
            "passed": np.array([x.passed for x in o], dtype=bool),
            "half_widths": np.array([_nan(x.half_width) for x in o], dtype=np.float64),
            "notes": [x.note for x in o],
        }
        if len(self.results) > 1:
            out["others"] = {str(i): self._groups(i) for i in range(1, len(self.results))}
        return out
