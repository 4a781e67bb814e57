"""``landscape track CKPT...``: the same scalars over a training run, one row per checkpoint."""

from __future__ import annotations

import os

import click

from landscape.errors import InputError

from .. import interrupt
from ..choices import METHODS, METRICS
from ..common import Session, analysis_options, echo_err, fmt, open_options
from ..outputs import draw_into


def _metrics(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} unknown; choose from {', '.join(METRICS)}")
    return names


@click.command("track")
@click.argument("ckpts", metavar="CKPT...", nargs=-1, required=True)
@click.option("--metrics", metavar="M1,M2", help="which: " + ", ".join(METRICS)
              + " [default: all; eos_ratio with --lr].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="one learning rate for every checkpoint: eos_ratio and the stability threshold "
              "(2/lr SGD; 38/lr Adam, on the preconditioned lambda_max). Without it, eos_ratio "
              "takes each checkpoint's own lr from its optimizer state (a schedule's value).")
@click.option("--optimizer", type=click.Choice(["auto", "sgd", "adam"]), default="auto",
              show_default=True, help="the threshold's optimizer (auto: Adam if its state is stored).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Lanczos eigenpairs for lambda_max.")
@click.option("--method", type=click.Choice(METHODS), default="xtrace", show_default=True,
              help="trace estimator.")
@click.option("--probes", type=click.IntRange(min=2), metavar="N", help="trace matvecs per checkpoint.")
@click.option("--csv", "csv_path", metavar="FILE.csv", help="also write the rows as CSV.")
@click.option("--tensorboard", metavar="DIR", help="also write TensorBoard scalars (needs tensorboard).")
@analysis_options
def track(ckpts: tuple[str, ...], metrics: str | None, lr: float | None, optimizer: str,
          top_k: int, method: str, probes: int | None, csv_path: str | None,
          tensorboard: str | None, **opts) -> None:
    """One row per checkpoint of a training run: curvature, loss and step size over training.

    CKPT... are files or glob patterns, ordered by the step stored in them (step, global_step,
    iteration, iter_num, epoch) or else naturally by name. The result file is rewritten after every
    checkpoint; the same command on the same file resumes where it stopped.

    \b
    Example:
      landscape track 'runs/ckpt_*.pt' --lr 0.1 --max-samples 512 -o run.h5 --csv run.csv
      landscape track 'out/checkpoint-*' --data tokens.npy --metrics lambda_max,eos_ratio
      landscape track data/demo_a.pt data/demo_b.pt --metrics loss,lambda_max,trace
    """
    from landscape.analyses import track as tr
    from landscape.analyses import track_order
    from landscape.results import read_result, read_summary
    from landscape.series import write_csv, write_tensorboard

    names = _metrics(metrics)
    if tensorboard:
        try:
            import tensorboard as _  # noqa: F401
        except ImportError:
            raise InputError('--tensorboard needs the tensorboard package: '
                             'pip install "landscape[tensorboard]"') from None
    s = Session("track", opts)
    paths = track_order.expand(list(ckpts))
    stem = os.path.splitext(os.path.basename(sorted(paths, key=track_order.natural_key)[0]))[0]
    out = opts.get("out") or f"{stem}_track.h5"
    oo = {k: v for k, v in open_options(opts).items() if k != "seed"}
    bar = s.progress("track", "checkpoints")

    def run_info(partial: tr.TrackResult, problem):
        run = s.run_info(problem, matvecs=partial.matvecs, curvature="hessian")
        run.checkpoints = [{"path": os.path.abspath(p), "sha256": h}
                           for p, h in zip(partial.checkpoints, partial.sha256)]
        return run

    try:
        result = tr.track(paths, names, lr=lr, optimizer=optimizer, top_k=top_k, method=method,
                          probes=probes, seed=opts.get("seed") or 0, open_options=oo, out=out,
                          run_info=run_info, progress=bar)
    except (KeyboardInterrupt, interrupt.Interrupted):
        bar.close()
        interrupt.say(f"interrupted: {out} keeps the checkpoints done so far; the same command "
                      "resumes")
        raise click.exceptions.Exit(interrupt.EXIT_STATUS) from None
    finally:
        bar.close()
    interrupt.state.written = [out]
    content = read_result(out)
    t = content["track"]
    figure = None
    if not opts.get("no_plot"):
        figure = opts.get("plot") or f"{stem}_track.png"
        draw_into(content, figure)
        interrupt.state.written.append(figure)
    columns = [k for k in tr.columns(list(tr.METRICS), None) if k in t]
    if csv_path:
        write_csv(csv_path, {"step": list(t["step"]), "checkpoint": list(t["checkpoint"]),
                             **{k: list(t[k]) for k in columns}})
    if tensorboard:
        write_tensorboard(tensorboard, {k: t[k] for k in columns}, t["step"], prefix="landscape/")
    if opts.get("as_json"):
        import json

        click.echo(json.dumps(read_summary(out)))
        return
    click.echo("  ".join(f"{c:>12}" for c in ["step", *columns]))
    for i in range(len(result.checkpoints)):
        vals = [fmt(float(t["step"][i]), 6)] + [fmt(float(t[k][i]), 5) for k in columns]
        click.echo("  ".join(f"{v:>12}" for v in vals))
    if result.threshold is not None:
        echo_err(f"stability threshold on lambda_max: {fmt(result.threshold, 5)}")
    written = [out] + [p for p in (figure, csv_path, tensorboard) if p]
    echo_err(f"matvecs {result.matvecs}; wrote {', '.join(written)}")


COMMANDS = [track]
