"""``landscape ghost CKPT [NEXT]``: the ghost-of-softmax radius and the normalised step."""

from __future__ import annotations

import os

import click

from landscape.analyses import directions as dirs
from landscape.analyses.ghost import ghost as run_ghost
from landscape.errors import InputError

from ..common import Session, analysis_options, fmt
from .sharpness import OPTIMIZER_OPTION, next_delta, optimizer_state


@click.command("ghost")
@click.argument("ckpt", type=click.Path(dir_okay=False))
@click.argument("next_ckpt", metavar="[NEXT]", required=False, type=click.Path(dir_okay=False))
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
    s = Session("ghost", opts)
    loaded = s.load(ckpt)
    p = loaded.problem
    adam = None if opts["no_adam"] else optimizer_state(loaded, opts["optimizer"], opts["optimizer_order"])
    delta = next_delta(s, loaded, next_ckpt)
    _, grad = p.loss_and_grad()
    update = dirs.resolve_update(p, grad, delta, adam, opts["lr"])
    choice = opts["direction"] or ("update" if update is not None else "gradient")
    tau, source = None, ""
    if choice == "gradient":
        v, label = -grad, "gradient"
        if opts["lr"] is not None:
            tau, source = opts["lr"] * float(grad.norm()), "lr*|grad|"
    elif choice == "update":
        if update is None:
            raise InputError("--direction update needs NEXT, an Adam state in CKPT, or --lr")
        v, label = update.vector, f"update ({update.source})"
        tau, source = float(update.vector.norm()), f"|update| ({update.source})"
    elif choice == "random":
        v, label = dirs.random_directions(p, 1, opts["seed"])[0], f"random (seed {opts['seed']})"
    elif os.path.exists(choice):
        v, label = dirs.from_file(p, choice), f"file {choice}"
    else:
        raise InputError(f"--direction {choice!r}: use gradient, update, random or a file")
    if opts["tau"] is not None:
        tau, source = opts["tau"], "--step"
    bar = s.progress("jvp", unit="batches")
    r = run_ghost(p, v, label, tau=tau, step_source=source, quantile=opts["quantile"], progress=bar)
    bar.close()
    t = r.tree()["ghost"]
    lines = [
        f"direction {r.direction}  ({r.n_classes} classes, {len(r.spread)} samples)",
        f"loss {fmt(r.loss)}  slope dL/dtau {fmt(r.slope, 4)}",
        f"rho_a {fmt(r.rho_a)}  (pi / max spread {fmt(t['max_spread'], 4)}, sample "
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
            f"{fmt(t['r'], 4)}  -> {t['attrs']['verdict']}"
        )
    else:
        lines.append("no step length known: pass --step, --lr or NEXT for r = tau/rho_a")
    run = s.run_info(loaded, matvecs=r.matvecs, curvature="hessian")
    s.finish(r, run, lines=lines)


COMMANDS = [ghost]
