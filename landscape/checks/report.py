"""Reports of rule outcomes: a text table, JSON, JUnit XML, Markdown and GitHub annotations.

Each function returns text; the caller decides where it goes (stdout, a file, the step summary).
JUnit: one ``<testcase>`` per rule (and checkpoint) with a ``<failure>`` on the failing ones, in
one ``<testsuite name="landscape check">`` (the schema Jenkins, GitLab and GitHub reporters read).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from .baseline import Outcome


def _num(x: float | None, digits: int = 6) -> str:
    if x is None:
        return ""
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


def _threshold(o: Outcome) -> str:
    text = f"{o.op} {_num(o.threshold)}"
    return text + (f" ± {_num(o.half_width, 3)}" if o.half_width is not None else "")


def _label(o: Outcome, many: bool) -> str:
    return f"{o.checkpoint}: {o.rule}" if many and o.checkpoint else o.rule


def _many(outcomes: list[Outcome]) -> bool:
    return len({o.checkpoint for o in outcomes}) > 1


def table(outcomes: list[Outcome]) -> list[str]:
    """Rule, value, threshold, margin, pass/fail: one line each, notes indented below."""
    many = _many(outcomes)
    rows = [(_label(o, many), _num(o.value), _threshold(o), _num(o.margin, 4),
             "pass" if o.passed else "FAIL") for o in outcomes]
    head = ("rule", "value", "threshold", "margin", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    for o, row in zip(outcomes, rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if o.note:
            lines.append(f"    {o.note}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} of {len(outcomes)} rules hold"
                 + (f", {failed} failed" if failed else ""))
    return lines


def as_json(outcomes: list[Outcome]) -> dict[str, Any]:
    """``{"passed": bool, "failed": n, "rules": [outcome...]}``."""
    return {
        "passed": all(o.passed for o in outcomes),
        "failed": sum(not o.passed for o in outcomes),
        "rules": [o.as_dict() for o in outcomes],
    }


def junit(outcomes: list[Outcome], seconds: float = 0.0) -> str:
    """JUnit XML: a testsuite with one testcase per outcome, a failure element on failing ones."""
    failed = sum(not o.passed for o in outcomes)
    suite = ET.Element("testsuite", name="landscape check", tests=str(len(outcomes)),
                       failures=str(failed), errors="0", time=f"{seconds:.3f}")
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", name=o.rule,
                             classname=f"landscape.check.{o.metric.split('.')[0]}")
        if o.checkpoint:
            case.set("file", o.checkpoint)
        detail = f"{o.metric} = {_num(o.value)}, threshold {_threshold(o)}, margin {_num(o.margin)}"
        if o.passed:
            ET.SubElement(case, "system-out").text = detail + (f"; {o.note}" if o.note else "")
        else:
            fail = ET.SubElement(case, "failure", message=f"{o.rule}: {_num(o.value)}",
                                 type="RuleFailed")
            fail.text = detail + (f"\n{o.note}" if o.note else "")
    root = ET.Element("testsuites", tests=str(len(outcomes)), failures=str(failed))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(outcomes: list[Outcome], title: str = "landscape check") -> str:
    """A heading, a verdict and a table (rule, value, threshold, margin, result), then notes."""
    failed = sum(not o.passed for o in outcomes)
    verdict = (f"**{failed} of {len(outcomes)} rules failed**" if failed
               else f"All {len(outcomes)} rules hold")
    lines = [f"## {title}", "", verdict, "",
             "| rule | value | threshold | margin | result |", "| --- | ---: | --- | ---: | --- |"]
    many = _many(outcomes)
    for o in outcomes:
        mark = "✅ pass" if o.passed else "❌ fail"
        lines.append(f"| `{_cell(_label(o, many))}` | {_num(o.value)} | {_cell(_threshold(o))} | "
                     f"{_num(o.margin, 4)} | {mark} |")
    notes = [o for o in outcomes if o.note]
    if notes:
        lines += ["", *[f"- `{_cell(o.rule)}`: {o.note}" for o in notes]]
    return "\n".join(lines) + "\n"


def annotations(outcomes: list[Outcome]) -> list[str]:
    """GitHub Actions ``::error`` workflow commands, one per failing rule."""
    out = []
    for o in outcomes:
        if o.passed:
            continue
        where = f"file={o.checkpoint}," if o.checkpoint else ""
        text = f"{o.rule}: {o.metric} = {_num(o.value)}, threshold {_threshold(o)}"
        if o.note:
            text += f" ({o.note})"
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        out.append(f"::error {where}title=landscape check::{text}")
    return out
