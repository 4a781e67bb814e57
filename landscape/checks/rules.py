"""Rules ``METRIC OP VALUE`` over a result's JSON summary, parsed without ``eval``.

METRIC is a dotted path of the nested summary (``trace.estimate``, ``spectrum.eigenvalues.0``);
OP one of ``< <= > >=``; VALUE a number or an arithmetic expression in the word ``baseline``
(``+ - * /``, unary minus, parentheses). The expression is evaluated on dual numbers
(value, d/d baseline), so a baseline's standard error can be carried to the threshold:
se_threshold = |dT/db| · se_baseline.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

ANALYSES = ("inspect", "spectrum", "trace", "sharpness", "ghost", "lmc")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_RULE = re.compile(r"^\s*([A-Za-z_][\w.\[\]]*)\s*(<=|>=|<|>)\s*(.+?)\s*$")
_NUMBER = r"(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
_TOKEN = re.compile(r"\s*(?:" + _NUMBER + r"|(baseline)|([-+*/()]))")


@dataclass(frozen=True)
class Dual:
    """A number and its derivative with respect to the baseline."""

    v: float
    d: float = 0.0

    def __add__(self, o: Dual) -> Dual:
        return Dual(self.v + o.v, self.d + o.d)

    def __sub__(self, o: Dual) -> Dual:
        return Dual(self.v - o.v, self.d - o.d)

    def __mul__(self, o: Dual) -> Dual:
        return Dual(self.v * o.v, self.d * o.v + self.v * o.d)

    def __truediv__(self, o: Dual) -> Dual:
        if o.v == 0:
            raise ZeroDivisionError
        return Dual(self.v / o.v, (self.d * o.v - self.v * o.d) / o.v**2)


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*;
    unary := '-' unary | NUMBER | 'baseline' | '(' expr ')'."""

    def __init__(self, text: str, rule: str) -> None:
        self.rule = rule
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self.error(f"unexpected {text[pos:].strip()[:12]!r}")
            kind = "num" if m.group(1) else "base" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex or 0)))
            pos = m.end()
        self.i = 0

    def error(self, why: str) -> InputError:
        return InputError(
            f"rule {self.rule!r} is malformed ({why}): use METRIC OP VALUE, e.g. "
            "'trace.estimate <= 1.2 * baseline' or 'spectrum.lambda_max < 50'"
        )

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise self.error("the value ends too soon")
        self.i += 1
        return self.tokens[self.i - 1]

    def parse(self) -> Any:
        tree = self.expr()
        if self.i != len(self.tokens):
            raise self.error(f"unexpected {self.peek()!r}")
        return tree

    def expr(self) -> Any:
        node = self.term()
        while self.peek() in ("+", "-"):
            node = (self.take()[1], node, self.term())
        return node

    def term(self) -> Any:
        node = self.unary()
        while self.peek() in ("*", "/"):
            node = (self.take()[1], node, self.unary())
        return node

    def unary(self) -> Any:
        kind, text = self.take()
        if text == "-":
            return ("neg", self.unary())
        if kind == "num":
            return float(text)
        if kind == "base":
            return "baseline"
        if text == "(":
            node = self.expr()
            if self.take()[1] != ")":
                raise self.error("a '(' is not closed")
            return node
        raise self.error(f"unexpected {text!r}")


def _eval(node: Any, b: Dual) -> Dual:
    if isinstance(node, float):
        return Dual(node)
    if node == "baseline":
        return b
    if node[0] == "neg":
        return Dual(0.0) - _eval(node[1], b)
    left, right = _eval(node[1], b), _eval(node[2], b)
    op = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
    return op[node[0]](left, right)


def _uses_baseline(node: Any) -> bool:
    if node == "baseline":
        return True
    return isinstance(node, tuple) and any(_uses_baseline(n) for n in node[1:])


@dataclass(frozen=True)
class Rule:
    """One parsed rule: ``metric op expression``."""

    text: str
    metric: str
    op: str
    expression: Any

    @property
    def analysis(self) -> str:
        """The analysis the metric belongs to (its first path element)."""
        return self.metric.split(".", 1)[0]

    @property
    def uses_baseline(self) -> bool:
        return _uses_baseline(self.expression)

    def threshold(self, baseline: float | None = None) -> Dual:
        """T(baseline) and dT/dbaseline."""
        if self.uses_baseline and baseline is None:
            raise InputError(f"rule {self.text!r} compares with `baseline`: give a baseline file")
        try:
            return _eval(self.expression, Dual(baseline or 0.0, 1.0))
        except ZeroDivisionError:
            raise InputError(f"rule {self.text!r}: division by zero in its value") from None

    def holds(self, value: float, threshold: float) -> bool:
        return bool(OPS[self.op](value, threshold))


def parse_rule(text: str) -> Rule:
    """``METRIC OP VALUE`` as a Rule; an InputError naming the rule when it is not one."""
    m = _RULE.match(text)
    if not m:
        raise _Parser("", text).error("no comparison < <= > >= between a metric and a value")
    metric, op, value = m.group(1), m.group(2), m.group(3)
    metric = re.sub(r"\[(\d+)\]", r".\1", metric)
    rule = Rule(text.strip(), metric, op, _Parser(value, text.strip()).parse())
    if rule.analysis not in ANALYSES or "." not in metric:
        raise InputError(
            f"rule {rule.text!r}: unknown metric {metric!r}; a metric is ANALYSIS.NAME with "
            f"ANALYSIS one of {', '.join(ANALYSES)} (e.g. trace.estimate)"
        )
    return rule


def parse_rules(texts: list[str] | tuple[str, ...]) -> list[Rule]:
    """Every rule parsed; at least one is needed."""
    if not texts:
        raise InputError("no rules: give `rule` (e.g. 'trace.estimate <= 500') or a [check] table")
    return [parse_rule(t) for t in texts]


def needed(rules: list[Rule]) -> list[str]:
    """The analyses the rules need, each once, in a fixed order."""
    wanted = {r.analysis for r in rules}
    return [a for a in ANALYSES if a in wanted]


def lookup(summary: dict[str, Any], metric: str) -> Any:
    """The node at a dotted path of ``summary`` (integers index lists), or KeyError."""
    node: Any = summary
    for part in metric.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(metric)
    return node


def _leaves(group: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names under ``group`` that are not groups themselves (``preconditioned.ratio``
    as well as ``lambda_max``), so a missing metric's error lists what a rule can name."""
    out = []
    for k, v in group.items():
        if k == "attrs":
            continue
        out += _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def number(summary: dict[str, Any], metric: str, rule: str, where: str = "the result") -> float:
    """The metric as a float; InputError naming the rule when it is missing or not a number."""
    try:
        node = lookup(summary, metric)
    except KeyError:
        group = summary.get(metric.split(".", 1)[0])
        known = sorted(_leaves(group)) if isinstance(group, dict) else []
        hint = f" (it has: {', '.join(known)})" if known else ""
        raise InputError(f"rule {rule!r}: {where} has no metric {metric!r}{hint}") from None
    if isinstance(node, list):
        raise InputError(f"rule {rule!r}: {metric!r} is a list of {len(node)}; index it, "
                         f"e.g. {metric}.0")
    if node is None:
        return float("nan")
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise InputError(f"rule {rule!r}: {metric!r} is not a number ({node!r})")
    return float(node)
