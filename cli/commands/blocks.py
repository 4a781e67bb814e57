"""``landscape blocks CKPT``: spectra of the curvature's diagonal blocks by parameter group, and
the Jensen–Shannon distances between them (transformer heterogeneity)."""

from __future__ import annotations

import click

from ..choices import CURVATURES, GROUP_PRESETS
from ..common import Session, analysis_options, echo_err, fmt


@click.command("blocks")
@click.argument("ckpt", type=click.Path())
@click.option("--group-by", "group_by", multiple=True, metavar="NAME=REGEX",
              help=f"a parameter group (repeat it), or a preset: {', '.join(GROUP_PRESETS)} "
              "(default: transformer: embeddings, qkv, attn_out, mlp, norms, head).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="top eigenvalues per group.")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=1e-6,
              show_default=True, help="relative residual of the eigenpairs.")
@click.option("--curvature", type=click.Choice(CURVATURES), default="hessian", show_default=True)
@click.option("--slq-runs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--slq-steps", type=click.IntRange(min=1), default=50, show_default=True)
@analysis_options
def blocks(ckpt: str, **opts) -> None:
    """Spectra of the diagonal blocks of the curvature at CKPT, by parameter group.

    \b
    Example:
      landscape blocks ./my-gpt2 --data tokens.npz
      landscape blocks ./my-gpt2 --data tokens.npz --group-by 'attn=attn\\.' --group-by 'mlp=mlp\\.'
    """
    from landscape.analyses.blockwise import blockwise

    s = Session("blocks", opts)
    problem = s.open(ckpt)
    bar = s.progress("blocks")
    try:
        r = blockwise(problem, group_by=opts["group_by"], top_k=opts["top_k"], tol=opts["tol"],
                      curvature=opts["curvature"], slq_runs=opts["slq_runs"],
                      slq_steps=opts["slq_steps"], seed=opts["seed"] or 0, progress=bar)
    finally:
        bar.close()
    if r.unassigned:
        echo_err(f"landscape: note: {len(r.unassigned)} parameter(s) in no group, e.g. "
                 f"{r.unassigned[0]}")
    lines = [f"{r.curvature} diagonal blocks of {ckpt} ({problem.size} params)",
             f"{'group':<14}{'params':>9}{'lambda_max':>13}{'trace':>13}{'± stderr':>11}"]
    for i, name in enumerate(r.names):
        lines.append(f"{name:<14}{int(r.n_params[i]):>9d}{fmt(r.lambda_max[i]):>13}"
                     f"{fmt(r.trace[i]):>13}{fmt(r.trace_stderr[i], 2):>11}")
    lines.append("Jensen-Shannon distance: " + "  ".join(
        f"{a}/{b} {r.js_distance[i, j]:.3f}" for i, a in enumerate(r.names)
        for j, b in enumerate(r.names) if j > i))
    run = s.run_info(problem, matvecs=r.matvecs, curvature=r.curvature)
    s.finish(r, run, plot=True, lines=lines)


COMMANDS = [blocks]
