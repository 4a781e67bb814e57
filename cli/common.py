"""What every analysis command shares: the options, building a Problem, writing the outputs.

A command module parses its own options, calls ``load(ckpt, opts)`` for a Problem, runs one
analysis from ``landscape.analyses``, and hands the Result to ``finish``, which writes the
.h5, draws the plot and prints the summary (or ``--json``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import torch

from landscape.errors import InputError
from landscape.loading.checkpoints import Checkpoint, load_checkpoint, load_into
from landscape.loading.data import load_data
from landscape.loading.models import build_model
from landscape.plots import draw
from landscape.problem import Problem
from landscape.results import Result, RunInfo, read_result, result_summary, write_result

from .progress import Progress


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
        help="built-in set, .npz/.pt/.h5 file, or a factory (default: the checkpoint's own).",
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
        help="cross-entropy (default for integer targets), mse, or pkg.module:function.",
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


@dataclass
class Loaded:
    """A checkpoint turned into a Problem, with what provenance needs."""

    problem: Problem
    checkpoint: Checkpoint
    model_spec: str
    data_spec: str


@dataclass
class Session:
    """One invocation: the options, the clock, and the checkpoints read so far."""

    command: str
    opts: dict[str, Any]
    start: float = field(default_factory=time.perf_counter)
    checkpoints: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.opts.get("device") or "auto")
        self.dtype = torch.float64 if self.opts.get("dtype") == "float64" else torch.float32
        torch.manual_seed(self.opts.get("seed") or 0)
        if self.opts.get("threads"):
            torch.set_num_threads(int(self.opts["threads"]))

    def checkpoint(self, path: str) -> Checkpoint:
        ckpt = load_checkpoint(path, trust=bool(self.opts.get("trust_checkpoint")))
        self.checkpoints.append(
            {"path": os.path.abspath(path), "sha256": ckpt.sha256, "format": ckpt.format}
        )
        return ckpt

    def model(self, ckpt: Checkpoint) -> tuple[torch.nn.Module, str]:
        """The model of ``ckpt`` with its weights loaded (flags override the checkpoint's spec)."""
        o, spec = self.opts, ckpt.spec
        model_spec = o.get("model") or spec.get("model")
        if model_spec is None and ckpt.module is not None:
            return ckpt.module, f"pickled module ({type(ckpt.module).__name__})"
        if model_spec is None:
            raise InputError(f"{ckpt.path}: the checkpoint names no model: pass --model SPEC")
        kwargs = o.get("model_kwargs")
        if kwargs is None and model_spec == spec.get("model"):
            kwargs = spec.get("model_kwargs")  # the checkpoint's kwargs belong to its own model
        model = build_model(
            model_spec, kwargs, base_dir=os.path.dirname(os.path.abspath(ckpt.path))
        )
        load_into(model, ckpt.state_dict)
        return model, model_spec

    def data(self, ckpt: Checkpoint | None, spec_flag: str = "data"):
        """The data set named by ``--data`` or by the checkpoint."""
        o = self.opts
        spec = ckpt.spec if ckpt else {}
        data_spec = o.get(spec_flag) or spec.get("data")
        if data_spec is None:
            raise InputError("no data: pass --data SPEC (the checkpoint names none)")
        kwargs = o.get("data_kwargs")
        if kwargs is None and data_spec == spec.get("data"):
            kwargs = spec.get("data_kwargs")
        base = os.path.dirname(os.path.abspath(ckpt.path)) if ckpt else None
        data = load_data(
            data_spec,
            kwargs,
            max_samples=o.get("max_samples"),
            seed=o.get("seed") or 0,
            base_dir=base,
        )
        return data, data_spec

    def load(self, path: str) -> Loaded:
        """Checkpoint -> model with weights -> data -> Problem."""
        ckpt = self.checkpoint(path)
        model, model_spec = self.model(ckpt)
        data, data_spec = self.data(ckpt)
        problem = self.problem(model, data, ckpt)
        return Loaded(problem, ckpt, model_spec, data_spec)

    def problem(self, model: torch.nn.Module, data: Any, ckpt: Checkpoint | None = None) -> Problem:
        o = self.opts
        loss = o.get("loss") or (ckpt.spec.get("loss") if ckpt else None)
        problem = Problem(
            model,
            data.x,
            data.y,
            loss=loss,
            batch_size=o.get("batch_size") or 256,
            params=o.get("params"),
            device=self.device,
            dtype=self.dtype,
            train_mode=bool(o.get("train_mode")),
        )
        if not o.get("threads") and self.device.type == "cpu" and problem.size < SMALL_MODEL:
            torch.set_num_threads(1)  # tiny kernels: thread hand-offs cost more than they give
        return problem

    def progress(self, label: str, unit: str = "matvecs") -> Progress:
        return Progress(label, unit)

    def run_info(
        self, loaded: Loaded | None, matvecs: int = 0, curvature: str = "", **extra: Any
    ) -> RunInfo:
        p = loaded.problem if loaded else None
        return RunInfo(
            command=self.command,
            seed=self.opts.get("seed") or 0,
            device=str(self.device),
            dtype=str(self.dtype).replace("torch.", ""),
            curvature=curvature,
            loss=p.loss_name if p else "",
            model=loaded.model_spec if loaded else "",
            data=loaded.data_spec if loaded else "",
            n_samples=p.n_samples if p else 0,
            n_params=p.size if p else 0,
            wall_seconds=time.perf_counter() - self.start,
            matvecs=matvecs,
            checkpoints=self.checkpoints,
            extra=extra,
        )

    def default_path(self, suffix: str) -> str:
        stem = "landscape"
        if self.checkpoints:
            stem = os.path.splitext(os.path.basename(self.checkpoints[0]["path"]))[0]
        return f"{stem}_{self.command}{suffix}"

    def finish(
        self,
        result: Result,
        run: RunInfo,
        plot: bool = True,
        lines: list[str] | None = None,
    ) -> None:
        """Write the .h5, draw the plot, print the summary (human lines or ``--json``)."""
        out = self.opts.get("out") or self.default_path(".h5")
        write_result(out, result, run)
        figure = None
        if plot and not self.opts.get("no_plot"):
            figure = self.opts.get("plot") or self.default_path(".png")
            draw(read_result(out), figure)
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
    sys.stderr.write(message + "\n")
