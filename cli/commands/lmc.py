"""``landscape lmc A B [C ...]``: linear mode connectivity, barriers, alignment, layer-wise."""

from __future__ import annotations

import click

from landscape.errors import InputError

from ..common import BN_BATCHES_OPTION, Session, analysis_options, fmt


@click.command("lmc")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option(
    "--points",
    type=click.IntRange(min=2),
    default=25,
    show_default=True,
    help="α grid points, endpoints included.",
)
@click.option(
    "--refine",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="extra points around the largest barrier.",
)
@click.option(
    "--eval-data", metavar="SPEC", help="a second data set (e.g. test) measured side by side."
)
@click.option(
    "--bn",
    type=click.Choice(["interpolate", "reset", "keep-a"]),
    help="buffers along the path (default: reset with BatchNorm, else interpolate).",
)
@BN_BATCHES_OPTION
@click.option(
    "--align",
    type=click.Choice(["none", "weights"]),
    default="none",
    show_default=True,
    help="permute B's hidden units to match A (weight matching).",
)
@click.option(
    "--save-aligned",
    metavar="FILE",
    help="write the aligned B as a checkpoint (with --align weights).",
)
@click.option(
    "--layerwise", is_flag=True, help="also interpolate one layer at a time (rest at A, and at B)."
)
@analysis_options
def lmc(checkpoints: tuple[str, ...], **opts) -> None:
    """Loss and accuracy along the line from checkpoint A to B, and the barrier on it.

    With more than two checkpoints, also the pairwise barrier matrix. Every checkpoint must
    have A's architecture; the model and data come from A unless flags say otherwise.

    \b
    Example:
      landscape lmc data/demo_a.pt data/demo_b.pt
      landscape lmc a.pt b.pt --align weights --save-aligned b_aligned.pt --eval-data test.npz
      landscape lmc a.pt b.pt c.pt --points 11 --json
    """
    if len(checkpoints) < 2:
        raise InputError("lmc needs at least two checkpoints: landscape lmc A B [C ...]")
    if opts["save_aligned"] and opts["align"] != "weights":
        raise InputError("--save-aligned needs --align weights")
    import landscape
    from landscape.analyses.lmc import lmc as run_lmc
    from landscape.results import write_checkpoint

    s = Session("lmc", opts, named_by=2)  # default a_b_lmc.h5: lmc a b and lmc a c differ
    problem = s.open(checkpoints[0])
    others = [landscape.weights_like(problem, p) for p in checkpoints[1:]]
    eval_problem = None
    if opts["eval_data"]:
        eval_problem = landscape.with_data(problem, opts["eval_data"], opts.get("data_kwargs"))
    progress = s.progress("lmc", "evaluations")
    result = run_lmc(
        problem,
        others,
        eval_problem=eval_problem,
        points=opts["points"],
        refine=opts["refine"],
        bn=opts["bn"],
        bn_batches=opts["bn_batches"],
        align=opts["align"],
        layerwise=opts["layerwise"],
        names=list(checkpoints),
        seed=opts["seed"] or 0,
        progress=progress,
    )
    progress.close()
    if opts["save_aligned"]:
        origin = problem.origin
        spec = dict(origin.checkpoint.spec) or {"model": origin.model_spec, "data": origin.data_spec}
        write_checkpoint(opts["save_aligned"], result.aligned_state, spec)
    b = result.barriers
    lines = [
        f"A {checkpoints[0]}  B {checkpoints[1]}  bn {result.bn}  align {result.align}  "
        f"{len(result.alpha)} points",
        f"loss A {fmt(result.curves['loss'][0])}  B {fmt(result.curves['loss'][-1])}  "
        f"max {fmt(result.curves['loss'].max())}"
        + ("  (endpoints with re-estimated BatchNorm statistics)" if result.bn == "reset" else ""),
    ]
    own = result.own
    if "own_loss" in own:
        acc = own.get("own_accuracy")
        lines.append(
            f"as saved (own buffers): loss A {fmt(own['own_loss'][0])}  B {fmt(own['own_loss'][1])}"
            + (f"  accuracy A {fmt(acc[0], 4)}  B {fmt(acc[1], 4)}" if acc is not None else "")
        )
    lines += [
        f"barrier (vs endpoint line, Entezari): loss {fmt(b['barrier_loss'])}  "
        f"error {fmt(b.get('barrier_accuracy'))}  at α={b['barrier_alpha']:.3g}",
        f"barrier (vs endpoint mean, Frankle):  loss {fmt(b['barrier_loss_mean'])}  "
        f"error {fmt(b.get('barrier_accuracy_mean'))}",
    ]
    if "eval_barrier_loss" in b:
        lines.append(
            f"eval set barrier (Entezari): loss {fmt(b['eval_barrier_loss'])}  "
            f"error {fmt(b.get('eval_barrier_accuracy'))}"
        )
    if result.alignment:
        al = result.alignment
        lines.append(
            f"alignment: ‖θ_A−θ_B‖ {al['distance_before']:.4g} -> {al['distance_after']:.4g} "
            f"({al['sweeps']} sweeps, {int(al['moved'].sum())} units moved)"
        )
        fixed = [str(f.decode() if isinstance(f, bytes) else f) for f in al.get("fixed", [])]
        if fixed:
            lines.append(f"  not aligned, their units kept in place ({len(fixed)}): "
                         + "; ".join(fixed[:3]) + ("; ..." if len(fixed) > 3 else ""))
    if result.layers:
        lines.append("layer-wise loss barrier, vs endpoint line / vs endpoint mean:")
    for name, group in result.layers.items():
        lines.append(
            f"  {name:<24} rest at A {fmt(group['barrier_loss_rest_a'], 4)} / "
            f"{fmt(group['barrier_loss_mean_rest_a'], 4)}   rest at B "
            f"{fmt(group['barrier_loss_rest_b'], 4)} / {fmt(group['barrier_loss_mean_rest_b'], 4)}"
        )
    if result.pairwise:
        lines.append("pairwise loss barrier (Entezari):")
        for i, row in enumerate(result.pairwise["barrier_loss"]):
            lines.append(f"  {checkpoints[i]:<24}" + "".join(f"{v:>10.4g}" for v in row))
    s.finish(result, s.run_info(problem), lines=lines)


COMMANDS = [lmc]
