"""``landscape sharpness CKPT [NEXT]``: λ_max, edge-of-stability ratios, directional sharpness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..common import VERIFY_OPTION, Session, analysis_options, fmt

if TYPE_CHECKING:
    from landscape.analyses.sharpness import SharpnessResult

_KIND_OPTION = click.option(
    "--optimizer",
    type=click.Choice(["auto", "adam", "adamw"]),
    default="auto",
    show_default=True,
    help="how the checkpoint's Adam state applies weight decay: L2 (adam) or decoupled (adamw); "
    "auto reads it from the state (torch < 2.6 does not record it).",
)
_ORDER_OPTION = click.option(
    "--optimizer-order",
    type=click.Choice(["model", "nanogpt", "hf"]),
    default=None,
    help="the order the optimizer was given the parameters in, where its state's shapes leave "
    "it ambiguous: model, nanogpt (ndim >= 2 first) or hf (no bias/norm first).",
)


def OPTIMIZER_OPTION(f):  # noqa: N802 - used as a decorator like the click options
    return _KIND_OPTION(_ORDER_OPTION(f))


def _optimizer_kind(problem) -> str:  # noqa: ANN001 - a Problem opened from a checkpoint
    from landscape.loading.optimizer import describe_optimizer

    c = problem.origin.checkpoint
    return describe_optimizer(c.optimizer).get("kind", "") if c.optimizer else ""


def _rates(r: SharpnessResult) -> str:
    if r.rate_source == "sgd state":
        return f"β = {r.momentum:g}, lr = {r.lr:g}, from the checkpoint's SGD state"
    return f"β = {r.momentum:g} from --momentum, lr = {r.lr:g}"


def stability_lines(r: SharpnessResult, optimizer: str) -> list[str]:
    """λ_max against each edge-of-stability threshold, with the β and lr it was computed from.

    ``optimizer`` is the kind of the checkpoint's optimizer state ('adam', 'adamw', 'sgd',
    another's name as ``optimizer_kind`` gives it, or '').
    """
    from landscape.loading.optimizer_kind import display_name

    lines = []
    if r.eos_ratio is not None:
        lines.append(
            f"edge of stability (gradient descent): lambda_max {fmt(r.lambda_max, 4)} vs threshold "
            f"(2+2β)/lr = {fmt(r.threshold, 4)} ({_rates(r)}): ratio {fmt(r.eos_ratio, 4)}"
        )
        if optimizer in ("adam", "adamw", "rmsprop"):
            who = "RMSprop" if optimizer == "rmsprop" else "Adam"
            where = ("see the preconditioned line below" if r.preconditioned else
                     f"drop --no-adam for the preconditioned sharpness against {who}'s threshold")
            lines.append(
                f"  the checkpoint holds {optimizer} state: this plain-GD threshold is not "
                f"{who}'s; {where}"
            )
        elif optimizer not in ("sgd", "unknown", ""):
            lines.append(
                f"  the checkpoint holds {display_name(optimizer)} state: its edge of "
                "stability is not plain GD's, and landscape knows no threshold for it"
            )
    if r.preconditioned:
        pc = r.preconditioned
        if "momentum" in pc:  # RMSprop
            rule = f"(2+2μ)/lr = {fmt(pc['threshold'], 4)} (μ = {pc['momentum']:g}, "
            who = "RMSprop"
        else:
            rule = f"(2+2β1)/((1-β1)·lr) = {fmt(pc['threshold'], 4)} (β1 = {pc['beta1']:g}, "
            who = "Adam"
        lines.append(
            f"edge of stability ({who}): preconditioned lambda_max {fmt(pc['lambda_max'], 4)} "
            f"vs threshold {rule}lr = {pc['lr']:g}): ratio {fmt(pc['ratio'], 4)}"
        )
    return lines


@click.command("sharpness")
@click.argument("ckpt", type=click.Path())
@click.argument("next_ckpt", metavar="[NEXT]", required=False, type=click.Path())
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="learning rate: gives the edge-of-stability ratio (and overrides Adam's) [default: "
    "an SGD state's own].",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    help="heavy-ball momentum beta: threshold (2+2*beta)/lr [default: an SGD state's own "
    "(the smallest of its groups), else 0].",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="eigenpairs for lambda_max and the gradient's top-k cosine.",
)
@click.option(
    "--random",
    "n_random",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="seeded Gaussian directions.",
)
@click.option(
    "--direction-file",
    type=click.Path(dir_okay=False),
    help="a direction in a .pt (flat tensor or dict by name) or .npy file.",
)
@click.option(
    "--curvature", type=click.Choice(["hessian", "ggn"]), default="hessian", show_default=True
)
@click.option("--no-adam", is_flag=True, help="ignore the checkpoint's optimizer state.")
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-6,
    show_default=True,
    help="Lanczos relative residual.",
)
@click.option("--max-steps", type=click.IntRange(min=1), help="most Lanczos steps.")
@OPTIMIZER_OPTION
@VERIFY_OPTION
@analysis_options
def sharpness(ckpt: str, next_ckpt: str | None, **opts) -> None:
    """How sharp CKPT is, overall and along the directions training takes.

    With NEXT (the checkpoint after one step), the update is NEXT - CKPT; otherwise it is
    rebuilt from the checkpoint's Adam state, or -lr*gradient with --lr.

    \b
    Example:
      landscape sharpness data/demo_a.pt
      landscape sharpness data/demo_a.pt data/demo_b.pt --lr 0.01 --json
    """
    from landscape import steps
    from landscape.analyses import directions as dirs
    from landscape.analyses.sharpness import sharpness as run_sharpness

    s = Session("sharpness", opts)
    p = s.open(ckpt)
    s.verify(p, opts["curvature"])
    update, adam = steps.update(
        p, next_ckpt, lr=opts["lr"], use_optimizer=not opts["no_adam"], optimizer=opts["optimizer"],
        optimizer_order=opts["optimizer_order"],
    )
    file_dir = dirs.from_file(p, opts["direction_file"]) if opts["direction_file"] else None
    bar = s.progress("lanczos")
    r = run_sharpness(
        p,
        curvature=opts["curvature"],
        top_k=opts["top_k"],
        n_random=opts["n_random"],
        seed=opts["seed"],
        lr=opts["lr"],
        momentum=opts["momentum"],
        adam=adam,
        update=update,
        file_direction=file_dir,
        tol=opts["tol"],
        max_steps=opts["max_steps"],
        progress=bar,
    )
    bar.close()
    lines = [
        f"loss {fmt(r.loss)}  grad norm {fmt(r.grad_norm)}  curvature {r.curvature}",
        f"lambda_max {fmt(r.lambda_max)}  top-{len(r.eigenvalues)} "
        + " ".join(fmt(e, 4) for e in r.eigenvalues),
    ]
    lines += stability_lines(r, _optimizer_kind(p))
    lines.append("directional sharpness u^T H u/|u|^2:")
    for name, value in r.directional.items():
        lines.append(f"  {name:<18}{value:>12.5g}")
    if len(r.random):
        lines.append(
            f"  {'random':<18}{r.random.mean():>12.5g} mean, std {r.random.std():.3g} "
            f"across {len(r.random)} directions (their spread, not an error bar)"
        )
    lines.append(
        f"gradient cosine with top-{len(r.eigenvalues)} eigenspace "
        f"{fmt(r.grad_cosine_topk, 4)}"
    )
    lines.append(f"quadratic model along the update ({r.update_source}):")
    lines.append(f"  {'t':>6}{'true loss':>14}{'quadratic':>14}")
    for t, a, b in zip(r.steps, r.true_loss, r.model_loss):
        if abs(t * 4 - round(t * 4)) < 1e-9:
            lines.append(f"  {t:>6.2f}{a:>14.6g}{b:>14.6g}")
    run = s.run_info(p, matvecs=r.matvecs, curvature=r.curvature)
    s.finish(r, run, lines=lines)


COMMANDS = [sharpness]
