"""Rules evaluated against a summary, optionally against a baseline summary.

A statistical estimate (a metric with a standard error: ``trace.estimate`` with ``trace.stderr``,
the SLQ ``spectrum.trace`` with ``spectrum.trace_stderr``, any ``X`` with a sibling ``X_stderr``)
fails a rule only when the difference from the threshold T(b) lies beyond the combined interval
sqrt((q_v · se_value)² + (q_b · dT/db · se_baseline)²): each estimate's own half-width, added in
quadrature as for a difference of independent estimates. q is the quantile the result's interval
was built with ((ci_high - ci_low) / 2se: Student-t on n - 1 degrees of freedom for a trace of n
probes, 2.78 at n = 5), or the normal quantile z where no interval is recorded. A rule without
``baseline`` thus fails exactly when the threshold lies beyond the interval its command printed.
(With z in place of t, a 5-probe trace equal to its threshold failed 6% of the time, not 2.5%.)
Every other metric is compared as it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from .rules import Rule, lookup, number


def _sibling(summary: dict[str, Any], metric: str, name: str) -> float | None:
    """The finite number recorded beside ``metric`` as ``name``: ``X_name`` for a metric ``X``,
    or ``name`` in the same group for an ``estimate``; None where there is none."""
    head, _, leaf = metric.rpartition(".")
    for path in [f"{metric}_{name}"] + ([f"{head}.{name}"] if leaf == "estimate" else []):
        try:
            value = lookup(summary, path)
        except KeyError:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def stderr_of(summary: dict[str, Any] | None, metric: str) -> float | None:
    """The standard error recorded for ``metric`` in ``summary``, or None for an exact number."""
    return None if summary is None else _sibling(summary, metric, "stderr")


def quantile_of(summary: dict[str, Any] | None, metric: str, se: float | None) -> float | None:
    """The quantile the result's own interval for ``metric`` was built with, (ci_high - ci_low)
    / 2se, or None where no interval is recorded."""
    if summary is None or not se:
        return None
    low, high = _sibling(summary, metric, "ci_low"), _sibling(summary, metric, "ci_high")
    if low is None or high is None:
        return None
    q = (high - low) / (2 * se)
    return q if math.isfinite(q) and q > 0 else None


def _confidence(summary: dict[str, Any], metric: str) -> float:
    try:
        c = lookup(summary, metric.rpartition(".")[0] + ".confidence")
    except KeyError:
        return 0.95
    return float(c) if isinstance(c, (int, float)) and 0 < c < 1 else 0.95


@dataclass
class Outcome:
    """One rule on one result: the numbers behind its verdict."""

    rule: str
    metric: str
    op: str
    value: float
    threshold: float
    passed: bool
    margin: float  # threshold - value for < and <=, value - threshold for > and >= (>= 0 holds)
    checkpoint: str = ""
    stderr: float | None = None
    baseline: float | None = None
    baseline_stderr: float | None = None
    half_width: float | None = None
    confidence: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def _interval(x: float, se: float | None, q: float) -> str:
    return f"{x:.6g}" if se is None else f"{x:.6g} ± {q * se:.3g}"


def evaluate_rule(rule: Rule, summary: dict[str, Any], baseline: dict[str, Any] | None = None,
                  checkpoint: str = "") -> Outcome:
    """The Outcome of ``rule`` on ``summary``; InputError naming the rule on bad input."""
    value = number(summary, rule.metric, rule.text)
    b = None
    if rule.uses_baseline:
        if baseline is None:
            rule.threshold(None)  # no file: a clear error
        b = number(baseline or {}, rule.metric, rule.text, where="the baseline")
    t = rule.threshold(b)
    sign = 1.0 if rule.op in ("<", "<=") else -1.0
    margin = sign * (t.v - value)
    out = Outcome(rule.text, rule.metric, rule.op, value, t.v, rule.holds(value, t.v), margin,
                  checkpoint, stderr_of(summary, rule.metric), b)
    if not math.isfinite(value) or not math.isfinite(t.v):
        out.passed, out.note = False, "the value or threshold is not a finite number"
        return out
    if b is not None:
        out.baseline_stderr = stderr_of(baseline, rule.metric)
    se_b = (t.d * out.baseline_stderr) if out.baseline_stderr is not None else None
    if out.stderr is None and not se_b:
        return out
    out.confidence = _confidence(summary, rule.metric)
    z = NormalDist().inv_cdf((1 + out.confidence) / 2)
    q_v = quantile_of(summary, rule.metric, out.stderr) or z
    q_b = quantile_of(baseline, rule.metric, out.baseline_stderr) or z
    out.half_width = math.hypot(q_v * (out.stderr or 0.0), q_b * (se_b or 0.0))
    pct = f"{100 * out.confidence:g}%"
    both = f"value {_interval(value, out.stderr, q_v)}"
    if b is not None:
        both += f", baseline {_interval(b, out.baseline_stderr, q_b)}"
    if out.passed:
        out.note = f"holds ({pct} intervals: {both})"
        return out
    out.passed = -margin <= out.half_width
    where = "inside" if out.passed else "beyond"
    out.note = (f"difference {-margin:.3g} from the threshold lies {where} the combined {pct} "
                f"interval ±{out.half_width:.3g} ({both})")
    return out


def evaluate(rules: list[Rule], summary: dict[str, Any], baseline: dict[str, Any] | None = None,
             checkpoint: str = "") -> list[Outcome]:
    """Every rule on one summary, in order."""
    return [evaluate_rule(r, summary, baseline, checkpoint) for r in rules]
