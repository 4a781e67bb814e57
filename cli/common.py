"""What every analysis command shares: the options, building a Problem, writing the outputs.

A command module parses its own options, opens its Problem with ``Session.open`` (the
library's ``landscape.open``), runs one analysis from ``landscape.analyses``, and hands the
Result to ``finish``, which writes the .h5, draws the plot and prints the summary (or ``--json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from . import interrupt, outputs
from .flags import flagify
from .progress import Progress

if TYPE_CHECKING:  # torch and the library are imported when a command runs, not for --help
    from landscape.problem import Problem
    from landscape.results import Result, RunInfo


def _json_option(ctx: click.Context, param: click.Parameter, value: Any) -> dict | None:
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON ({e.msg})") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"hidden\": [32]}'")
    return parsed


DATA_OPTIONS = [
    click.option(
        "--model",
        "model",
        metavar="SPEC",
        help="zoo name, pkg.module:factory or file.py:factory (default: the checkpoint's own).",
    ),
    click.option(
        "--model-kwargs",
        callback=_json_option,
        metavar="JSON",
        help="keyword arguments for the model factory.",
    ),
    click.option(
        "--data",
        "data",
        metavar="SPEC",
        help="built-in set; .npz/.pt/.h5 file of (x, y) or of token ids (input_ids, "
        "attention_mask, labels; .npy of ids); a datasets save_to_disk folder; or a factory "
        "(default: the checkpoint's own).",
    ),
    click.option(
        "--data-kwargs",
        callback=_json_option,
        metavar="JSON",
        help="keyword arguments for a built-in set or data factory.",
    ),
    click.option(
        "--loss",
        metavar="NAME",
        help="cross-entropy (default for integer targets), mse, causal-lm (default for a "
        "causal-LM folder), or pkg.module:function.",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=256,
        show_default=True,
        help="samples per batch; results are whole-set means.",
    ),
    click.option("--max-samples", type=click.IntRange(min=1), help="use only the first N samples."),
    click.option("--params", metavar="REGEX", help="restrict θ to parameters whose names match."),
    click.option(
        "--state-prefix",
        metavar="PREFIX",
        help="the prefix of the model's keys in the checkpoint, e.g. 'net.' (default: found).",
    ),
    click.option(
        "--train-mode", is_flag=True, help="norm layers use batch statistics, dropout on."
    ),
    click.option(
        "--trust-checkpoint",
        is_flag=True,
        help="allow whole pickled modules / TorchScript (runs code).",
    ),
]

RUN_OPTIONS = [
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option(
        "--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True
    ),
    click.option(
        "--model-dtype",
        type=click.Choice(["float32", "bf16", "fp16"]),
        help="run the model's forward/backward in bf16/fp16 (autocast; products ~1e-2), θ and "
        "Krylov vectors in --dtype (default: --dtype throughout).",
    ),
    click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="seeds every random probe and direction.",
    ),
    click.option(
        "-o", "--out", metavar="FILE.h5", help="result file (default: <ckpt>_<command>.h5)."
    ),
    click.option(
        "--plot", "plot", metavar="FILE.png", help="plot file (default: <ckpt>_<command>.png)."
    ),
    click.option("--no-plot", is_flag=True, help="draw no plot."),
    click.option(
        "--json", "as_json", is_flag=True, help="print the summary as one JSON object on stdout."
    ),
    click.option("--config", metavar="FILE", help="TOML file with defaults for any option."),
    click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: 1 below 100k parameters, else torch's choice)."),
]


BN_BATCHES_OPTION = click.option(
    "--bn-batches",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="batches for re-estimating BatchNorm statistics (--bn reset).",
)

VERIFY_OPTION = click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="first check the curvature products on two random probes: symmetry and a central "
    "difference of the gradient (2 products and 2 gradients; stored in the result).",
)


def analysis_options(f: Callable) -> Callable:
    """Decorate a click command with every shared option of DESIGN.md."""
    for opt in reversed(DATA_OPTIONS + RUN_OPTIONS):
        f = opt(f)
    return f


def run_options(f: Callable) -> Callable:
    """Only the run/output options (for commands that build no Problem of their own)."""
    for opt in reversed(RUN_OPTIONS):
        f = opt(f)
    return f


SMALL_MODEL = 100_000  # below this many parameters a CPU run uses one thread unless --threads


def open_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The command-line options as ``landscape.open`` arguments."""
    return {
        "model": opts.get("model"),
        "model_kwargs": opts.get("model_kwargs"),
        "data": opts.get("data"),
        "data_kwargs": opts.get("data_kwargs"),
        "state_prefix": opts.get("state_prefix"),
        "loss": opts.get("loss"),
        "batch_size": opts.get("batch_size") or 256,
        "max_samples": opts.get("max_samples"),
        "params": opts.get("params"),
        "device": opts.get("device") or "auto",
        "dtype": opts.get("dtype") or "float32",
        "train_mode": bool(opts.get("train_mode")),
        "trust": bool(opts.get("trust_checkpoint")),
        "seed": opts.get("seed") or 0,
        "model_dtype": opts.get("model_dtype"),
    }


@dataclass
class Session:
    """One invocation: the options, the clock, and the Problem it opened."""

    command: str
    opts: dict[str, Any]
    start: float = field(default_factory=time.perf_counter)
    problem: Problem | None = None
    named_by: int = 1  # how many checkpoints name the default output (lmc: A and B)
    _noted: int = 0
    _out: str | None = None

    def __post_init__(self) -> None:
        import torch

        from landscape.session import resolve_device

        self.device = resolve_device(self.opts.get("device") or "auto")
        self.dtype = torch.float64 if self.opts.get("dtype") == "float64" else torch.float32
        torch.manual_seed(self.opts.get("seed") or 0)
        if self.opts.get("threads"):
            torch.set_num_threads(int(self.opts["threads"]))

    def open(self, path: str) -> Problem:
        """``landscape.open`` with this command's options; notes go to stderr."""
        import torch

        import landscape

        problem = landscape.open(path, **open_options(self.opts))
        if not self.opts.get("threads") and self.device.type == "cpu" and problem.size < SMALL_MODEL:
            torch.set_num_threads(1)  # tiny kernels: thread hand-offs cost more than they give
        self.problem = problem
        self.notes()
        return problem

    def notes(self) -> None:
        """Print the library's notes not printed yet (once each; rank 0 alone)."""
        from landscape import distributed

        notes = self.problem.notes if self.problem is not None and distributed.is_main() else []
        for note in notes[self._noted :]:
            echo_err(f"landscape: note: {flagify(note)}")
        self._noted = len(notes)

    def verify(self, problem: Problem, curvature: str = "hessian") -> None:
        """With ``--verify`` (the default), check the operator before the analysis; a warning
        when it looks wrong, and both defects go into the result file."""
        if not self.opts.get("verify", True):
            return
        from landscape import distributed
        from landscape.verify import verify

        self.verification = verify(problem, curvature, seed=self.opts.get("seed") or 0)
        if not self.verification.ok and distributed.is_main():
            echo_err(f"landscape: warning: {self.verification.message()}")

    def progress(self, label: str, unit: str = "matvecs") -> Progress:
        from landscape import distributed

        return Progress(label, unit, enabled=distributed.is_main())

    def run_info(self, problem: Problem | None, matvecs: int = 0, curvature: str = "",
                 **extra: Any) -> RunInfo:
        from landscape import distributed
        from landscape.precision import ACCURACY, resolve_model_dtype
        from landscape.results import RunInfo

        origin = getattr(problem, "origin", None)
        if problem is not None:
            extra.setdefault("data_in_memory", "yes" if problem.cached else "no (streamed)")
            extra.setdefault("world_size", distributed.world_size())
        check = getattr(self, "verification", None)
        if check is not None:
            extra.update(verify_symmetry=check.symmetry, verify_fd_gap=check.fd_gap)
        md = resolve_model_dtype(origin.options.get("model_dtype")) if origin else None
        if md is not None:
            extra.setdefault("model_dtype", f"{md} (autocast: products accurate to about "
                             f"{ACCURACY[md]})".replace("torch.", ""))
        return RunInfo(
            command=self.command,
            seed=self.opts.get("seed") or 0,
            device=str(self.device),
            dtype=str(self.dtype).replace("torch.", ""),
            curvature=curvature,
            loss=problem.loss_name if problem else "",
            model=origin.model_spec if origin else "",
            data=origin.data_spec if origin else "",
            n_samples=problem.n_samples if problem else 0,
            n_params=problem.size if problem else 0,
            wall_seconds=time.perf_counter() - self.start,
            matvecs=matvecs,
            checkpoints=origin.checkpoints if origin else [],
            extra=extra,
        )

    @property
    def checkpoints(self) -> list[dict[str, str]]:
        origin = getattr(self.problem, "origin", None)
        return origin.checkpoints if origin else []

    def default_path(self, suffix: str) -> str:
        stems = [os.path.splitext(os.path.basename(c["path"]))[0] for c in self.checkpoints]
        return f"{'_'.join(stems[: self.named_by]) or 'landscape'}_{self.command}{suffix}"

    def out_path(self) -> str:
        """``-o``, else the default name; when that holds a result of other checkpoints, the
        first free ``stem-N.h5`` (said in a note)."""
        if self.opts.get("out"):
            return self.opts["out"]
        if self._out is None:
            default = self.default_path(".h5")
            self._out = outputs.free_default(default, [c["sha256"] for c in self.checkpoints])
            if self._out != default and distributed_main():
                echo_err(f"landscape: note: {default} holds a result of other checkpoints; "
                         f"writing {self._out}")
        return self._out

    def figure_path(self) -> str:
        """``--plot``, else beside a default result (same number), else the default name."""
        if self.opts.get("plot"):
            return self.opts["plot"]
        if self.opts.get("out"):
            return self.default_path(".png")
        return os.path.splitext(self.out_path())[0] + ".png"

    def finish(
        self,
        result: Result,
        run: RunInfo,
        plot: bool = True,
        lines: list[str] | None = None,
    ) -> None:
        """Write the .h5, draw the plot, print the summary (human lines or ``--json``); under
        torch.distributed, rank 0 alone does."""
        from landscape.results import result_summary

        if not distributed_main():
            return
        self.notes()
        out = self.out_path()
        figure = self.figure_path() if plot and not self.opts.get("no_plot") else None
        interrupt.check()
        outputs.write_together(out, result, run, figure)
        if self.opts.get("as_json"):
            click.echo(json.dumps(result_summary(result, run)))
            return
        for line in lines or []:
            click.echo(line)
        click.echo(f"matvecs {run.matvecs}, {run.wall_seconds:.1f}s on {run.device}", err=True)
        click.echo(f"wrote {out}" + (f" and {figure}" if figure else ""), err=True)


def fmt(value: float | None, digits: int = 6) -> str:
    """A number for a summary line."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def distributed_main() -> bool:
    """Whether this process is rank 0 (or the only one)."""
    from landscape import distributed

    return distributed.is_main()
