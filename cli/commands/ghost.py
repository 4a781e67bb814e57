"""``landscape ghost CKPT [NEXT]``: the ghost-of-softmax radius and the normalised step."""

from __future__ import annotations

import click

from ..common import VERIFY_OPTION, Session, analysis_options, fmt
from .sharpness import OPTIMIZER_OPTION


@click.command("ghost")
@click.argument("ckpt", type=click.Path())
@click.argument("next_ckpt", metavar="[NEXT]", required=False, type=click.Path())
@click.option(
    "--direction",
    default=None,
    metavar="gradient|update|random|FILE",
    help="unit direction v (default: update when one is known, else gradient).",
)
@click.option(
    "--step",
    "tau",
    type=click.FloatRange(min=0),
    help="step length tau along v (overrides the one implied by --lr or NEXT).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="learning rate: tau = lr*|grad| along the gradient; overrides Adam's lr.",
)
@click.option(
    "--quantile",
    type=click.FloatRange(0, 1, min_open=True),
    help="also pi / this quantile of the spread (NOT a bound).",
)
@click.option("--no-adam", is_flag=True, help="ignore the checkpoint's optimizer state.")
@OPTIMIZER_OPTION
@VERIFY_OPTION
@analysis_options
def ghost(ckpt: str, next_ckpt: str | None, **opts) -> None:
    """How long a step CKPT can take before the softmax's complex zeros get in the way.

    The update is NEXT - CKPT, else Adam's next step rebuilt from the checkpoint, else
    -lr*gradient with --lr. r = tau/rho_a below 1 is inside the radius.

    \b
    Example:
      landscape ghost data/demo_a.pt
      landscape ghost data/demo_a.pt data/demo_b.pt --json
      landscape ghost data/demo_a.pt --direction gradient --lr 0.5 --quantile 0.99
    """
    from landscape import steps
    from landscape.analyses.ghost import ghost as run_ghost

    s = Session("ghost", opts)
    p = s.open(ckpt)
    s.verify(p, "hessian")
    update, _ = steps.update(
        p, next_ckpt, lr=opts["lr"], use_optimizer=not opts["no_adam"], optimizer=opts["optimizer"],
        optimizer_order=opts["optimizer_order"],
    )
    d = steps.ghost_direction(
        p, opts["direction"], update, lr=opts["lr"], tau=opts["tau"], seed=opts["seed"]
    )
    bar = s.progress("jvp", unit="batches")
    r = run_ghost(
        p, d.vector, d.label, tau=d.tau, step_source=d.step_source, quantile=opts["quantile"],
        progress=bar,
    )
    bar.close()
    lines = [
        f"direction {r.direction}  ({r.n_classes} classes, {len(r.spread)} samples)",
        f"loss {fmt(r.loss)}  slope dL/dtau {fmt(r.slope, 4)}",
        f"rho_a {fmt(r.rho_a)}  (pi / max spread {fmt(r.max_spread, 4)}, sample "
        f"{r.critical_sample})",
        f"rho_top2 {fmt(r.rho_top2)}  (top-2 estimate, not a bound)",
    ]
    if r.rho_exact is not None:
        lines.append(f"rho_exact {fmt(r.rho_exact)}  (two classes: exact radius)")
    if r.rho_quantile is not None:
        lines.append(f"rho_quantile {fmt(r.rho_quantile)}  (q={r.quantile}, NOT a bound)")
    lines.append(f"tau_H = 2/(v^T H v) {fmt(r.tau_hessian)}  (v^T H v = {fmt(r.vhv, 4)})")
    if r.tau is not None:
        lines.append(
            f"step tau {fmt(r.tau)} from {r.step_source}:  r = tau/rho_a = "
            f"{fmt(r.r, 4)}  -> {r.verdict}"
        )
    else:
        lines.append("no step length known: pass --step, --lr or NEXT for r = tau/rho_a")
    run = s.run_info(p, matvecs=r.matvecs, curvature="hessian")
    s.finish(r, run, lines=lines)


COMMANDS = [ghost]
