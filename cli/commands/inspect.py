"""``landscape inspect CKPT``: format, parameters per layer, optimizer state, loss and gradient."""

from __future__ import annotations

import click

from ..common import Session, analysis_options, fmt


@click.command("inspect")
@click.argument("ckpt", type=click.Path())
@analysis_options
def inspect(ckpt: str, **opts) -> None:
    """Show what CKPT holds and how its model does on the data.

    Draws a plot (each block's parameter and gradient norm) only with --plot FILE.png.

    \b
    Example:
      landscape inspect data/demo_a.pt
      landscape inspect model.pt --model mynet.py:make --data val.npz --json
      landscape inspect data/demo_a.pt --plot demo_a_norms.png
    """
    from landscape.analyses.inspect import inspect as run_inspect
    from landscape.loading import hf, hf_summary
    from landscape.loading.optimizer import describe_optimizer

    s = Session("inspect", opts)
    problem = s.open(ckpt)
    origin = problem.origin
    c = origin.checkpoint
    optim = describe_optimizer(c.optimizer) if c.optimizer else {}
    result = run_inspect(problem, format=c.format, optimizer=optim)
    lines = [
        f"checkpoint {ckpt}  format {c.format}  sha256 {c.sha256[:12]}",
        f"model {origin.model_spec}  params {problem.size}  data {origin.data_spec} "
        f"({problem.n_samples} samples)",
        f"loss {fmt(result.loss)}  accuracy {fmt(result.accuracy, 4)}  "
        f"grad norm {fmt(result.grad_norm)}",
        *(hf_summary.describe(c, problem.names, problem.numels, problem.dtype)
          if c.format == hf.FORMAT else []),
        f"optimizer: {optim.get('kind', 'none')}"
        + (f" (step {optim.get('step')})" if optim.get("step") is not None else ""),
        f"{'layer':<32}{'params':>10}{'norm':>12}{'grad norm':>12}",
    ]
    for name, n, w, g in zip(result.layers, result.counts, result.norms, result.grad_norms):
        lines.append(f"{name:<32}{n:>10d}{w:>12.4g}{g:>12.4g}")
    s.finish(result, s.run_info(problem), plot=bool(opts.get("plot")), lines=lines)

COMMANDS = [inspect]
