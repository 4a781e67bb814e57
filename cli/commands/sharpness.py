"""``landscape sharpness CKPT [NEXT]``: λ_max, edge-of-stability ratios, directional sharpness."""

from __future__ import annotations

import dataclasses

import click

from landscape.analyses import directions as dirs
from landscape.analyses.sharpness import sharpness as run_sharpness
from landscape.loading.optimizer import adam_state

from ..common import Loaded, Session, analysis_options, fmt


def next_delta(s: Session, loaded: Loaded, path: str | None):
    """NEXT − CKPT over the problem's parameters, or None without NEXT."""
    if path is None:
        return None
    model, _ = s.model(s.checkpoint(path))
    return dirs.difference(loaded.problem, dict(model.named_parameters()))


OPTIMIZER_OPTION = click.option(
    "--optimizer",
    type=click.Choice(["auto", "adam", "adamw"]),
    default="auto",
    show_default=True,
    help="how the checkpoint's Adam state applies weight decay: L2 (adam) or decoupled (adamw); "
    "auto reads it from the state (torch < 2.6 does not record it).",
)


def optimizer_state(loaded: Loaded, kind: str = "auto"):
    """The checkpoint's Adam state by parameter name (``kind`` overrides Adam vs AdamW), or None."""
    sd = loaded.checkpoint.optimizer
    if not sd:
        return None
    names = [n for n, _ in loaded.problem.model.named_parameters()]
    state = adam_state(sd, names)
    if state is None:
        return None
    if kind != "auto":
        return dataclasses.replace(state, kind=kind)
    groups = sd.get("param_groups") or [{}]
    if state.weight_decay > 0 and "decoupled_weight_decay" not in groups[0]:
        click.echo(
            "landscape: warning: the optimizer state has weight decay but does not say whether "
            "it was Adam or AdamW (torch < 2.6); assuming Adam: pass --optimizer adamw if not",
            err=True,
        )
    return state


@click.command("sharpness")
@click.argument("ckpt", type=click.Path(dir_okay=False))
@click.argument("next_ckpt", metavar="[NEXT]", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="learning rate: gives the edge-of-stability ratio (and overrides Adam's).",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="heavy-ball momentum beta: threshold (2+2*beta)/lr.",
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
    s = Session("sharpness", opts)
    loaded = s.load(ckpt)
    p = loaded.problem
    adam = None if opts["no_adam"] else optimizer_state(loaded, opts["optimizer"])
    delta = next_delta(s, loaded, next_ckpt)
    _, grad = p.loss_and_grad()
    update = dirs.resolve_update(p, grad, delta, adam, opts["lr"])
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
    tree = r.tree()["sharpness"]
    lines = [
        f"loss {fmt(r.loss)}  grad norm {fmt(r.grad_norm)}  curvature {r.curvature}",
        f"lambda_max {fmt(r.lambda_max)}  top-{len(r.eigenvalues)} "
        + " ".join(fmt(e, 4) for e in r.eigenvalues),
    ]
    if "eos_ratio" in tree:
        lines.append(
            f"edge of stability: lr*lambda_max/(2+2*beta) = {fmt(tree['eos_ratio'], 4)}"
            f"  (threshold {fmt(tree['threshold'], 4)})"
        )
    if r.preconditioned:
        pc = r.preconditioned
        lines.append(
            f"adam preconditioned lambda_max {fmt(pc['lambda_max'], 4)}  threshold "
            f"{fmt(pc['threshold'], 4)}  ratio {fmt(pc['ratio'], 4)}"
        )
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
        f"{fmt(tree['grad_cosine_topk'], 4)}"
    )
    lines.append(f"quadratic model along the update ({r.update_source}):")
    lines.append(f"  {'t':>6}{'true loss':>14}{'quadratic':>14}")
    for t, a, b in zip(r.steps, r.true_loss, r.model_loss):
        if abs(t * 4 - round(t * 4)) < 1e-9:
            lines.append(f"  {t:>6.2f}{a:>14.6g}{b:>14.6g}")
    run = s.run_info(loaded, matvecs=r.matvecs, curvature=r.curvature)
    s.finish(r, run, lines=lines)


COMMANDS = [sharpness]
