"""One module per command, each listing its click commands in ``COMMANDS``.

The group knows every command's name and one-line help without importing its module
(``SHORT``); a module is imported only when its command runs or shows its own help, and command
modules import torch and the analyses inside the command function. ``tests/test_cli_startup.py``
checks ``SHORT`` against the modules.
"""

from __future__ import annotations

import importlib

import click

# command name -> (module under cli.commands, one-line help), in the order --help lists them
SHORT: dict[str, tuple[str, str]] = {
    "inspect": ("inspect", "Show what CKPT holds and how its model does on the data."),
    "spectrum": ("spectrum", "Top eigenvalues and spectral density of the loss curvature at CKPT."),
    "blocks": ("blocks", "Spectra of the diagonal blocks of the curvature at CKPT, by parameter group."),
    "trace": ("trace", "Estimate the trace of CKPT's Hessian (or GGN/Fisher) with a confidence interval."),
    "sharpness": ("sharpness", "How sharp CKPT is, overall and along the directions training takes."),
    "ghost": ("ghost", "How long a step CKPT can take before the softmax's complex zeros get in the way."),
    "lmc": ("lmc", "Loss and accuracy along the line from checkpoint A to B, and the barrier on it."),
    "surface": ("surface", "Loss and accuracy on a line or plane through CKPT: θ + x·d1 (+ y·d2)."),
    "track": ("track", "One row per checkpoint of a training run: curvature, loss and step size over training."),
    "check": ("check", "Gate CKPT on RULEs: exit 0 when all hold, 1 when one fails, 2 on bad input."),
    "plot": ("show", "Redraw the plot of a result file from the numbers it holds."),
    "show": ("show", "Print the summary of a result file."),
}


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word to fit ``limit`` characters with '...', as click's own listing."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 1)].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."


def load(name: str) -> click.Command:
    """The click command ``name``, importing its module."""
    module = importlib.import_module(f"{__name__}.{SHORT[name][0]}")
    return next(c for c in module.COMMANDS if c.name == name)


class LazyGroup(click.Group):
    """A click group whose commands are imported when used, not when the group is built."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SHORT)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SHORT:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load(cmd_name)
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in SHORT)
        rows = [(name, _shorten(short, limit)) for name, (_, short) in SHORT.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def all_commands() -> list[click.Command]:
    """Every command (imports every command module, none of them imports torch)."""
    return [load(name) for name in SHORT]
