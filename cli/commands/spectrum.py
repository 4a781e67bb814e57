"""``landscape spectrum CKPT``: top eigenvalues (Lanczos) and spectral density (SLQ) of the loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..choices import CURVATURES, SOLVERS, WHICH
from ..common import VERIFY_OPTION, Session, analysis_options, echo_err, fmt

if TYPE_CHECKING:
    from landscape.analyses.spectrum import Spectrum, SpectrumResult


def _values(s: Spectrum, n: int = 10) -> str:
    shown = " ".join(fmt(v) for v in s.eigenvalues[:n])
    return shown + (f" ... ({len(s.eigenvalues)} values)" if len(s.eigenvalues) > n else "")


def summary_lines(r: SpectrumResult, source: str) -> list[str]:
    """The human summary: what was computed, to what tolerance, and the scalars to quote."""
    from landscape.intervals import pm

    w = r.whole
    state = "converged" if w.converged else "NOT converged"
    which = "all, exact" if w.solver == "dense" else w.which
    lines = [
        f"{r.curvature} spectrum of {source} ({w.n_params} params)",
        f"eigenvalues ({which}, {w.solver}, tol {w.tol:g}, {state}, max residual "
        f"{fmt(float(w.residuals.max()), 2)}): {_values(w)}",
    ]
    if w.lambda_min is None:
        lines.append(
            f"lambda_max {fmt(w.lambda_max)} [{w.lambda_max_from}]   lambda_min not estimated "
            f"(--which {w.which} without the density: use --which both, or drop --no-density)"
        )
    else:
        lines.append(
            f"lambda_max {fmt(w.lambda_max)} [{w.lambda_max_from}]   lambda_min "
            f"{fmt(w.lambda_min)} [{w.lambda_min_from}]   |min/max| {fmt(w.ratio, 4)}"
        )
    if w.density is not None:
        runs, steps = w.density.nodes.shape
        outliers = "n/a" if w.n_outliers is None else str(w.n_outliers)
        lo, hi = w.negative_mass_ci
        lines += [
            f"trace {fmt(w.trace)} {pm(w.trace_ci[1] - w.trace, w.confidence)} (Student t over "
            f"{runs} SLQ runs x {steps} steps, s.e. {fmt(w.trace_stderr, 2)}; for a tighter "
            f"trace: landscape trace)",
            f"negative mass {fmt(w.negative_mass, 4)} ({100 * w.confidence:g}% CI "
            f"[{fmt(lo, 3)}, {fmt(hi, 3)}] over the {runs} runs, s.e. "
            f"{fmt(w.negative_mass_stderr, 2)})   bulk edge {fmt(w.bulk_edge, 4)}   "
            f"sigma {fmt(w.density.sigma, 3)}",
            f"outliers: {outliers} of the computed, ~{fmt(w.n_outliers_slq, 3)} by SLQ",
        ]
    if w.memory_note:
        lines.append(w.memory_note)
    if r.blocks:
        lines.append(
            f"{'block':<24}{'params':>9}{'lambda_max':>13}{'lambda_min':>13}"
            f"{'trace':>12}{'matvecs':>9}"
        )
        for name, b in r.blocks.items():
            lines.append(
                f"{name:<24}{b.n_params:>9d}{fmt(b.lambda_max):>13}"
                f"{fmt(b.lambda_min):>13}{fmt(b.trace):>12}{b.matvecs:>9d}"
            )
    return lines


@click.command("spectrum")
@click.argument("ckpt", type=click.Path())
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="eigenvalues wanted (from each end with --which both).",
)
@click.option(
    "--which",
    type=click.Choice(WHICH),
    default="largest",
    show_default=True,
    help="largest/smallest algebraic, both ends, or largest magnitude.",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-6,
    show_default=True,
    help="relative residual every wanted eigenpair must reach.",
)
@click.option(
    "--curvature",
    type=click.Choice(CURVATURES),
    default="hessian",
    show_default=True,
    help="hessian, Gauss-Newton, Monte-Carlo or empirical Fisher.",
)
@click.option(
    "--slq-runs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="independent SLQ start vectors (run as one block).",
)
@click.option(
    "--slq-steps",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Lanczos steps per SLQ run (quadrature nodes).",
)
@click.option(
    "--sigma",
    type=click.FloatRange(min=0, min_open=True),
    help="Gaussian smoothing width of the density (default: range/100).",
)
@click.option(
    "--solver",
    type=click.Choice(SOLVERS),
    default="lanczos",
    show_default=True,
    help="eigensolver: ours, SciPy ARPACK (CPU) or CuPy (GPU).",
)
@click.option("--no-density", is_flag=True, help="skip the SLQ density (and the trace).")
@click.option("--save-eigenvectors", is_flag=True, help="store the eigenvectors (k, P).")
@click.option("--per-layer", is_flag=True, help="also each parameter block's diagonal block.")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    help="probe vectors per vmap call (lower it to save memory).",
)
@VERIFY_OPTION
@analysis_options
def spectrum(ckpt: str, **opts) -> None:
    """Top eigenvalues and spectral density of the loss curvature at CKPT.

    \b
    Example:
      landscape spectrum data/demo_a.pt
      landscape spectrum data/demo_a.pt --top-k 10 --which both --per-layer --json
    """
    from landscape.analyses.spectrum import spectrum as run_spectrum

    s = Session("spectrum", opts)
    problem = s.open(ckpt)
    s.verify(problem, opts["curvature"])
    bar = s.progress("spectrum")
    try:
        result = run_spectrum(
            problem,
            top_k=opts["top_k"],
            which=opts["which"],
            tol=opts["tol"],
            curvature=opts["curvature"],
            slq_runs=opts["slq_runs"],
            slq_steps=opts["slq_steps"],
            sigma=opts["sigma"],
            solver=opts["solver"],
            density=not opts["no_density"],
            save_eigenvectors=opts["save_eigenvectors"],
            per_layer=opts["per_layer"],
            chunk=opts["chunk"],
            seed=opts["seed"] or 0,
            progress=bar,
        )
    finally:
        bar.close()
    if not result.whole.converged:
        echo_err(
            f"warning: not every eigenpair reached --tol {opts['tol']:g} "
            f"(max residual {float(result.whole.residuals.max()):.2g})"
        )
    run = s.run_info(problem, matvecs=result.matvecs, curvature=opts["curvature"])
    s.finish(result, run, plot=True, lines=summary_lines(result, ckpt))


COMMANDS = [spectrum]
