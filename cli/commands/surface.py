"""``landscape surface CKPT``: 1-D and 2-D loss surfaces, written point by point and resumable."""

from __future__ import annotations

import glob
import os
import re
from typing import TYPE_CHECKING

import click

from landscape.errors import InputError

from .. import interrupt
from ..choices import IGNORES, NORMS
from ..common import BN_BATCHES_OPTION, Session, analysis_options, fmt

if TYPE_CHECKING:
    from landscape.analyses import surface_directions as sd

SAVED = ["surface/loss", "surface/accuracy", "surface/done"]  # the mask last


def _paths(values: tuple[str, ...], expand: bool = False) -> list[str]:
    """Comma-separated and repeated values; with ``expand``, glob patterns in natural order."""
    out: list[str] = []
    for value in values:
        for part in filter(None, value.split(",")):
            hits = sorted(glob.glob(part), key=_natural) if expand and glob.has_magic(part) else []
            out.extend(hits or [part])
    return out


def _natural(path: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _default_range(d: sd.Directions) -> str:
    import numpy as np

    if d.kind == "through":
        return "-0.5:1.5"
    if d.kind == "trajectory":
        c = np.asarray(d.extra["trajectory"])
        lo, hi = np.minimum(c.min(axis=0), 0), np.maximum(c.max(axis=0), 0)
        pad = 0.25 * np.maximum(hi - lo, 1e-12)
        return ",".join(f"{a:.6g}:{b:.6g}" for a, b in zip(lo - pad, hi + pad))
    return "1"


@click.command("surface")
@click.argument("ckpt", type=click.Path())
@click.option(
    "--dirs",
    type=click.IntRange(1, 2),
    help="1 (a curve) or 2 (a surface; default, or the number of --through checkpoints).",
)
@click.option(
    "--axes",
    type=click.Choice(["random", "hessian"]),
    default="random",
    show_default=True,
    help="random Gaussian directions, or the top Hessian eigenvectors.",
)
@click.option(
    "--norm",
    type=click.Choice(list(NORMS)),
    default="filter",
    show_default=True,
    help="scale random directions per filter (Li et al. 2018), per layer, or not.",
)
@click.option(
    "--ignore",
    type=click.Choice(list(IGNORES)),
    default="biasbn",
    show_default=True,
    help="biasbn: zero the biases and norm-layer parameters of random directions.",
)
@click.option(
    "--through",
    multiple=True,
    metavar="CKPT",
    help="the line through CKPT and B (or plane through B, C): repeat or comma-separate.",
)
@click.option(
    "--trajectory",
    multiple=True,
    metavar="CKPT",
    help="checkpoints of a run (repeat, comma-separate or a quoted glob): their first principal components.",
)
@click.option(
    "--dir-file",
    multiple=True,
    metavar="FILE",
    help="a direction per .npy/.pt file, or a surface .h5's directions.",
)
@click.option(
    "--steps",
    metavar="N|NX,NY",
    help="grid points per axis (default 51 for a curve, 21 for a surface).",
)
@click.option(
    "--range",
    "range_",
    metavar="R|X0:X1[,Y0:Y1]",
    help="coordinates per axis (default -1:1; through: -0.5:1.5; trajectory: its extent).",
)
@click.option(
    "--bn",
    type=click.Choice(["reset", "interpolate", "keep"]),
    help="buffers at each point (default: reset with BatchNorm, interpolate along --through, else keep).",
)
@BN_BATCHES_OPTION
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    help="points per vectorised pass (torch.func.vmap); 1: one at a time (default: 32 without convolutions, else 1; see benchmarks/surface_speed.py).",
)
@click.option("--force", is_flag=True, help="start over even if the result file holds another run.")
@analysis_options
def surface(ckpt: str, **opts) -> None:
    """Loss and accuracy on a line or plane through CKPT: θ + x·d1 (+ y·d2).

    The result file is written as points finish; running the same command again continues an
    interrupted run, and a finished file is not recomputed.

    \b
    Example:
      landscape surface data/demo_a.pt --steps 21 --range 1
      landscape surface data/demo_a.pt --dirs 1 --axes hessian --range 0.5
      landscape surface data/demo_a.pt --through data/demo_b.pt --steps 25 --range 0:1
      landscape surface final.pt --trajectory 'run/epoch_*.pt' --steps 31,31
      landscape plot demo_a_surface.h5 --levels 30 --log
    """
    from landscape.analyses import surface_directions as sd
    from landscape.analyses.surface import (
        empty,
        mismatch,
        parse_range,
        parse_steps,
        resolve_bn,
        resume,
    )
    from landscape.analyses.surface import surface as run_surface
    from landscape.results import read_result, update_result, write_result

    s = Session("surface", opts)
    problem = s.open(ckpt)
    directions, states, names = sd.choose(
        problem, opts["dirs"], through=_paths(opts["through"]),
        trajectory=_paths(opts["trajectory"], expand=True), dir_files=list(opts["dir_file"]),
        axes=opts["axes"], seed=opts["seed"] or 0, norm=opts["norm"], ignore=opts["ignore"],
    )
    n = len(directions.vectors)
    steps = parse_steps(opts["steps"] or ("51" if n == 1 else "21"), n)
    ranges = parse_range(opts["range_"] or _default_range(directions), n)
    bn = resolve_bn(problem, opts["bn"], directions.kind == "through")
    result = empty(
        directions, steps, ranges, problem.is_classification, opts["seed"] or 0, bn, names
    )
    out = s.out_path()  # the default: the first that is free or holds this checkpoint's run
    run = s.run_info(problem, matvecs=result.matvecs)
    had = 0
    if os.path.exists(out) and not opts["force"]:
        stored = read_result(out)
        shas = [c.get("sha256") for _, c in sorted(stored.get("checkpoints", {}).items())]
        why = mismatch(stored, result)
        if why is None and shas != [c["sha256"] for c in s.checkpoints]:
            why = "its checkpoints differ"
        if why:
            raise InputError(f"{out} holds another run ({why}): pass --force to start over")
        result = resume(stored, result)
        had = int(result.done.sum())
    else:
        write_result(out, result, run)
    if not result.complete:
        progress = s.progress("surface", "points")
        saved = [k for k in SAVED if k != "surface/accuracy" or result.accuracy is not None]
        try:
            run_surface(
                problem,
                result,
                states,
                bn_batches=opts["bn_batches"],
                chunk=opts["chunk"],
                save=lambda r: update_result(out, r, run, saved),
                progress=progress,
            )
        except (KeyboardInterrupt, interrupt.Interrupted):
            progress.close()
            interrupt.say(
                f"interrupted: {int(result.done.sum())} of {result.done.size} points are in {out}; "
                "run the same command to continue"
            )
            raise click.exceptions.Exit(interrupt.EXIT_STATUS) from None
        progress.close()
    run = s.run_info(problem, matvecs=result.matvecs)
    lines = _summary(ckpt, result, had)
    s.finish(result, run, lines=lines)


def _summary(ckpt: str, r, had: int) -> list[str]:  # noqa: ANN001
    import numpy as np

    shape = "x".join(str(k) for k in r.loss.shape)
    how = r.kind + (f", {r.norm}-normalised, ignore {r.ignore}" if r.kind == "random" else "")
    lines = [f"{ckpt}: {len(r.directions)}-D surface, {shape} points, directions {how}, "
             f"buffers {r.bn}"]  # fmt: skip
    if had:
        lines.append(f"resumed: {had} of {r.done.size} points were already in the file")
    k = np.unravel_index(int(np.nanargmin(r.loss)), r.loss.shape)
    at = ", ".join(f"{axis[i]:.3g}" for axis, i in zip((r.x, r.y), k))
    lines.append(f"loss min {fmt(r.loss[k])} at ({at})  max {fmt(np.nanmax(r.loss))}")
    centre = tuple(np.flatnonzero(axis == 0) for axis in (r.x, r.y)[: r.loss.ndim])
    if all(len(c) for c in centre):
        idx = tuple(int(c[0]) for c in centre)
        acc = "" if r.accuracy is None else f"  accuracy {fmt(r.accuracy[idx], 4)}"
        lines.append(f"loss at the centre {fmt(r.loss[idx])}{acc}")
    return lines


COMMANDS = [surface]
