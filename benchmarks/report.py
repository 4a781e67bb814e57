"""Tables and the RESULTS.md page: main comparison, per-product cost, targets, trace study."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.rows import Row
from benchmarks.trace_efficiency import BUDGETS, Efficiency

OURS = "landscape"


def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _ours_for(rows: list[Row], row: Row) -> Row | None:
    """Our row answering the same question (same method for traces, else our first)."""
    mine = [r for r in rows if r.tool == OURS and r.workload == row.workload
            and r.question == row.question and r.m.ok]
    same = [r for r in mine if r.key == row.key]
    return (same or mine or [None])[0]


def main_table(rows: list[Row]) -> list[str]:
    """Markdown table of the algorithmic questions with our/their ratios."""
    out = ["| workload | question | tool | median s | matvecs | peak MB | result | rel. error "
           "| ours/this time | ours/this matvecs |",
           "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        if r.question not in ("top1", "top5", "trace", "slq"):
            continue
        ours = _ours_for(rows, r)
        t_ratio = mv_ratio = None
        if ours is not None and r.tool != OURS and r.m.seconds > 0:
            t_ratio = ours.m.seconds / r.m.seconds
            if r.matvecs:
                mv_ratio = ours.matvecs / r.matvecs
        secs = _f(r.m.seconds, "{:.3f}") + ("" if r.m.ok else " (to failure)")
        out.append(
            f"| {r.workload} | {r.key} | {r.label.split(' (')[0]} | {secs} | {_f(r.matvecs, '{}')}"
            f" | {_f(r.m.peak_bytes / 2**20 if r.m.ok else None, '{:.1f}')} | {r.result} "
            f"| {_f(r.accuracy, '{:.1e}')} | {_f(t_ratio, '{:.2f}')} | {_f(mv_ratio, '{:.2f}')} |")
    return out


@dataclass
class Cost:
    """Per-product cost of one tool on one workload (seconds)."""

    workload: str
    tool: str
    hvp: float | None
    grad: float | None
    block: float | None  # per probe, k probes in one call
    single: float | None  # per probe, k single calls


def costs(rows: list[Row], k: int) -> list[Cost]:
    """HVP, gradient and per-probe costs per (workload, tool)."""
    out: list[Cost] = []
    for wl in dict.fromkeys(r.workload for r in rows):
        for tool in dict.fromkeys(r.tool for r in rows if r.workload == wl):
            got = {r.question: r.m.seconds for r in rows
                   if r.workload == wl and r.tool == tool and r.m.ok}
            if "hvp" not in got:
                continue
            out.append(Cost(wl, tool, got.get("hvp"), got.get("grad"),
                            got["block"] / k if "block" in got else None,
                            got["singles"] / k if "singles" in got else None))
    return out


def cost_table(cs: list[Cost], k: int) -> list[str]:
    """Markdown table: one HVP vs one gradient, and per-probe cost with k batched probes."""
    out = [f"| workload | tool | HVP s | gradient s | HVP/grad | per probe, {k} in one block s "
           f"| per probe, {k} single calls s | block per probe / grad |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in cs:
        ratio = c.hvp / c.grad if c.hvp and c.grad else None
        bratio = c.block / c.grad if c.block and c.grad else None
        out.append(f"| {c.workload} | {c.tool} | {_f(c.hvp, '{:.4f}')} | {_f(c.grad, '{:.4f}')} "
                   f"| {_f(ratio, '{:.2f}')} | {_f(c.block, '{:.4f}')} | {_f(c.single, '{:.4f}')}"
                   f" | {_f(bratio, '{:.2f}')} |")
    return out


def efficiency_table(effs: list[Efficiency]) -> list[str]:
    """Markdown table of RMS relative trace errors per budget and the matvec ratios."""
    out = ["| operator | method | " + " | ".join(f"{b} mv" for b in BUDGETS)
           + " | Hutchinson matvecs / this method's, same error |",
           "|---|---|" + "---:|" * (len(BUDGETS) + 1)]
    for e in effs:
        for method, errs in e.errors.items():
            ratio = e.ratios.get(method)
            out.append(f"| {e.name} | {method} | " + " | ".join(f"{x:.1e}" for x in errs)
                       + f" | {_f(ratio, '{:.1f}x') if method != 'hutchinson' else '1'} |")
    return out


def _get(rows: list[Row], wl: str, key: str, tool: str) -> Row | None:
    found = [r for r in rows if r.workload == wl and r.key == key and r.tool == tool]
    return found[0] if found else None


def targets(rows: list[Row], cs: list[Cost], effs: list[Efficiency], tol: float) -> list[str]:
    """One line per target of issues 3 and 4 and workload: met (with the ratio) or missed."""
    out: list[str] = []
    for wl in dict.fromkeys(r.workload for r in rows):
        ours1 = _get(rows, wl, "top1", OURS)
        theirs = [r for r in rows if r.workload == wl and r.question == "top1"
                  and r.tool != OURS and r.matvecs]
        if ours1 and ours1.matvecs and theirs:
            accurate = [r for r in theirs if r.accuracy is not None and r.accuracy <= tol]
            pool = accurate or theirs
            best = min(pool, key=lambda r: r.matvecs or 0)
            ratio = ours1.matvecs / best.matvecs
            every = min(theirs, key=lambda r: r.matvecs or 0)
            note = (f"; fewest of all: {every.label} {every.matvecs} (rel. error "
                    f"{_f(every.accuracy, '{:.1e}')})" if every is not best else "")
            out.append(_line(f"{wl}: top-1 to {tol:g} in no more matvecs than any tool",
                             ratio <= 1.0, f"ours {ours1.matvecs} vs {best.label} "
                             f"{best.matvecs} (fewest among answers within {tol:g}) = "
                             f"{ratio:.2f}x{note}", ratio, 1.0))
        o5, p5 = _get(rows, wl, "top5", OURS), _get(rows, wl, "top5", "pyhessian")
        if o5 and p5 and o5.m.ok:
            ratio = o5.m.seconds / p5.m.seconds
            out.append(_line(f"{wl}: top-5 in < 1/4 of PyHessian's wall time", ratio < 0.25,
                             f"{o5.m.seconds:.3f} s / {p5.m.seconds:.3f} s = {ratio:.3f}",
                             ratio, 0.25))
        os_, ps = _get(rows, wl, "slq", OURS), _get(rows, wl, "slq", "pyhessian")
        if os_ and ps and os_.m.ok:
            ratio = os_.m.seconds / ps.m.seconds
            extra = "" if ps.m.ok else " (PyHessian failed; its time to failure, a lower bound)"
            out.append(_line(f"{wl}: 100-step SLQ >= 3x faster than PyHessian", ratio <= 1 / 3,
                             f"{os_.m.seconds:.3f} s / {ps.m.seconds:.3f} s = {1 / ratio:.2f}x "
                             f"faster{extra}", ratio, 1 / 3))
    for c in cs:
        if c.tool != OURS or not (c.hvp and c.grad):
            continue
        r = c.hvp / c.grad
        out.append(_line(f"{c.workload}: one HVP <= 2.5x a gradient", r <= 2.5,
                         f"{c.hvp:.4f} s / {c.grad:.4f} s = {r:.2f}x", r, 2.5))
        if c.block:
            r = c.block / c.grad
            out.append(_line(f"{c.workload}: batched HVP <= 1.5x a gradient per probe", r <= 1.5,
                             f"{c.block:.4f} s / {c.grad:.4f} s = {r:.2f}x", r, 1.5))
    for e in effs:
        if not e.target:
            continue
        for method, ratio in e.ratios.items():
            ok = not math.isnan(ratio) and ratio >= 3
            out.append(_line(f"trace on {e.name}: {method} reaches Hutchinson's error with "
                             f"several (>= 3) times fewer matvecs", ok,
                             f"{_f(ratio, '{:.1f}')}x fewer (Hutchinson at {e.hutch_budget})",
                             None if math.isnan(ratio) else 3 / max(ratio, 1e-9), 1.0))
    return out


def _best_reference(rows: list[Row], wl: str, question: str, tol: float) -> Row | None:
    """The fastest other tool's answer to ``question`` that is correct: within ``tol`` of the
    reference where there is one, else not flagged as unconverged (accuracy unchecked)."""
    pool = [r for r in rows if r.workload == wl and r.question == question and r.tool != OURS
            and r.m.ok]
    pool = [r for r in pool if (r.accuracy <= tol if r.accuracy is not None
                                else "not converged" not in r.result)]
    return min(pool, key=lambda r: r.m.seconds) if pool else None


def targets_real(rows: list[Row], cs: list[Cost], tol: float) -> list[str]:
    """One line per target of issue 16 and workload (the realistic sizes): time and matvecs
    against the best correct reference, trace against PyHessian, SLQ against eigenthings."""
    out: list[str] = []
    for wl in dict.fromkeys(r.workload for r in rows):
        for q, label in (("top1", "top-1"), ("top5", "top-5")):
            ours, best = _get(rows, wl, q, OURS), _best_reference(rows, wl, q, tol)
            if not (ours and ours.m.ok and best):
                continue
            t, mv = ours.m.seconds / best.m.seconds, ours.matvecs / max(best.matvecs or 1, 1)
            checked = "" if best.accuracy is not None else " (no reference: accuracy unchecked)"
            out.append(_line(f"{wl}: {label} to {tol:g} in <= 0.6 of the best correct reference's "
                             f"time and <= its matvecs", t <= 0.6 and mv <= 1.0,
                             f"{ours.m.seconds:.3f} s, {ours.matvecs} mv against {best.tool} "
                             f"{best.key} {best.m.seconds:.3f} s, {best.matvecs} mv{checked} = "
                             f"{t:.2f} (time), {mv:.2f} (matvecs)", t, 0.6))
        for key, tool, limit, q in (("trace:hutchinson", "pyhessian", 0.8, "trace"),
                                    ("slq", "eigenthings", 0.6, "SLQ")):
            ours, theirs = _get(rows, wl, key, OURS), _get(rows, wl, key, tool)
            if ours and theirs and ours.m.ok and theirs.m.ok:
                r = ours.m.seconds / theirs.m.seconds
                out.append(_line(f"{wl}: {q} ({key}) in <= {limit} of {tool}'s time", r <= limit,
                                 f"{ours.m.seconds:.3f} s / {theirs.m.seconds:.3f} s = {r:.2f}",
                                 r, limit))
    for c in cs:
        if c.tool == OURS and c.hvp and c.grad:
            r = c.hvp / c.grad
            out.append(_line(f"{c.workload}: one HVP <= 2.0 gradients", r <= 2.0,
                             f"{c.hvp:.4f} s / {c.grad:.4f} s = {r:.2f}", r, 2.0))
    return out


def _line(what: str, met: bool, detail: str, ratio: float | None, limit: float) -> str:
    if met:
        return f"- **met** — {what}: {detail}"
    by = f" (missed by {ratio / limit:.2f}x)" if ratio is not None else ""
    return f"- **MISSED** — {what}: {detail}{by}"
