"""Thresholds and baselines over results: ``landscape check``'s library side.

``parse_rules`` reads ``METRIC OP VALUE`` rules, ``needed`` names the analyses they need,
``evaluate`` compares a summary (and a baseline summary) with them, ``report`` renders Outcomes.
"""

from __future__ import annotations

from . import report
from .baseline import Outcome, evaluate, evaluate_rule, stderr_of
from .rules import ANALYSES, Rule, lookup, needed, parse_rule, parse_rules

__all__ = [
    "ANALYSES", "Outcome", "Rule", "evaluate", "evaluate_rule", "lookup", "needed", "parse_rule",
    "parse_rules", "report", "stderr_of",
]
