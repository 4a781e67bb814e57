"""``landscape trace CKPT``: Hutchinson / Hutch++ / XTrace with a confidence interval."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..choices import CURVATURES, METHODS
from ..common import VERIFY_OPTION, Session, analysis_options, fmt

if TYPE_CHECKING:
    from landscape.analyses.trace import TraceAnalysis


def _stop_line(r: TraceAnalysis, opts: dict) -> str:
    w = r.whole.result
    half = w.ci_high - w.estimate
    if w.stopped == "rtol":
        return (
            f"stopped on rtol after {w.matvecs} matvecs: half-width {fmt(half, 4)} <= "
            f"{fmt(opts['rtol'] * abs(w.estimate), 4)} = {opts['rtol']:g}·|estimate|"
        )
    if w.stopped == "max_matvecs":
        return (
            f"stopped on the budget: {w.matvecs} matvecs spent before rtol {opts['rtol']:g} was "
            f"met (half-width {fmt(half, 4)} = {half / abs(w.estimate):.3g}·|estimate|)"
        )
    if w.stopped == "memory":
        return (
            f"stopped on memory: {w.matvecs} matvecs spent, a doubled run's blocks would not fit "
            f"(half-width {fmt(half, 4)} = {half / abs(w.estimate):.3g}·|estimate|)"
        )
    if w.stopped == "exact":
        return (
            f"exact: the operator ({w.matvecs} parameters) fits one run, traced from unit vectors"
        )
    return f"fixed budget of {w.matvecs} matvecs (no --rtol)"


def _lines(r: TraceAnalysis, opts: dict, n_params: int) -> list[str]:
    from landscape.intervals import pm

    w = r.whole.result
    pct = f"{100 * w.confidence:g}%"
    lines = [
        f"trace of the {r.curvature} ({w.method}, {n_params} params): {fmt(w.estimate)} "
        f"{pm(w.ci_high - w.estimate, w.confidence, 3)} [{fmt(w.ci_low)}, {fmt(w.ci_high)}], "
        f"s.e. {fmt(w.stderr, 3)}",
        _stop_line(r, opts),
    ]
    if r.memory_note:
        lines.append(r.memory_note)
    if r.blocks:
        head = f"± ({pct} CI)"
        lines.append(f"{'layer':<32}{'params':>10}{'trace':>14}{head:>14}{'stopped':>13}")
        for name, size, b in zip(r.block_names, r.block_sizes, r.blocks):
            e = b.result
            lines.append(
                f"{name:<32}{size:>10d}{e.estimate:>14.6g}{e.ci_high - e.estimate:>14.3g}"
                f"{e.stopped:>13}"
            )
        total, se = r.block_sum
        z = r.block_z
        lines.append(
            f"sum of the layers {fmt(total)} (s.e. {fmt(se, 3)}) vs whole model "
            f"{fmt(w.estimate)}: difference {z:+.2f} standard errors"
        )
    if r.diagonal is not None:
        d = r.diagonal
        lines.append(
            f"diagonal ({r.diagonal_method}): {d.size} entries in /trace/diagonal ({r.diagonal_matvecs} matvecs), "
            f"sum {fmt(float(d.sum()))}, range [{fmt(float(d.min()), 4)}, {fmt(float(d.max()), 4)}]"
        )
    return lines


@click.command("trace")
@click.argument("ckpt", type=click.Path())
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="xtrace",
    show_default=True,
    help="hutchinson, hutchpp (Hutch++) or xtrace.",
)
@click.option(
    "--probes",
    type=click.IntRange(min=2),
    metavar="N",
    help="matvecs of one run (hutchinson: probes) [default: 64 hutchinson, 99 hutchpp, "
    "100 xtrace; 32 for an adaptive hutchinson].",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0, min_open=True),
    metavar="R",
    help="add probes until the CI half-width <= R·|estimate| (or --max-matvecs is spent).",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="level of the confidence interval.",
)
@click.option(
    "--max-matvecs",
    type=click.IntRange(min=2),
    metavar="N",
    help="budget of each estimate (whole model, each layer) [default with --rtol: hutchinson "
    "3200, hutchpp/xtrace 16x the first run].",
)
@click.option(
    "--curvature",
    type=click.Choice(CURVATURES),
    default="hessian",
    show_default=True,
    help="the matrix whose trace is estimated.",
)
@click.option("--per-layer", is_flag=True, help="also the trace of each layer's diagonal block.")
@click.option("--diagonal", is_flag=True, help="also estimate diag(C) (saved to /trace/diagonal): XDiag with --method xtrace, else Hutchinson.")
@click.option(
    "--chunk", type=click.IntRange(min=1), metavar="K", help="push K probes at a time through one vmapped product "
    "[default: measured on the first products, capped by the free memory].",
)
@VERIFY_OPTION
@analysis_options
def trace(
    ckpt: str,
    method: str,
    probes: int | None,
    rtol: float | None,
    confidence: float,
    max_matvecs: int | None,
    curvature: str,
    per_layer: bool,
    diagonal: bool,
    chunk: int | None,
    **opts,
) -> None:
    """Estimate the trace of CKPT's Hessian (or GGN/Fisher) with a confidence interval.

    \b
    Example:
      landscape trace data/demo_a.pt
      landscape trace data/demo_a.pt --rtol 0.02 --per-layer
      landscape trace model.pt --method hutchinson --probes 200 --json | jq .trace.estimate
    """
    from landscape.analyses.trace import trace as run_trace

    s = Session("trace", opts)
    problem = s.open(ckpt)
    s.verify(problem, curvature)
    bar = s.progress("trace")
    try:
        result = run_trace(
            problem,
            method=method,
            probes=probes,
            rtol=rtol,
            confidence=confidence,
            max_matvecs=max_matvecs,
            curvature=curvature,
            per_layer=per_layer,
            diagonal=diagonal,
            chunk=chunk,
            seed=opts.get("seed") or 0,
            progress=bar,
        )
    finally:
        bar.close()
    run = s.run_info(problem, matvecs=result.matvecs, curvature=curvature)
    lines = _lines(result, {"rtol": rtol}, problem.size)
    s.finish(result, run, lines=lines)


COMMANDS = [trace]
