"""The one table from the library's Python parameter names to this command line's flags.

Library errors name a parameter in backquotes (`batch_size`); the command line shows the flag
(--batch-size), and `name=value` the flag with its value. A name not in the table becomes
--name-with-dashes when some command has that option, and stays as it is otherwise.
"""

from __future__ import annotations

import functools
import re

import click

FLAGS = {
    "trust": "--trust-checkpoint",
    "n_random": "--random",
    "tau": "--step",
    "use_optimizer=False": "--no-adam",
    "density=False": "--no-density",
    "data_kwargs": "--data-kwargs",
    "model_kwargs": "--model-kwargs",
}

_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:=[^`]*)?)`")


def flag(name: str) -> str:
    """The flag for the library parameter ``name`` (or ``name=value``)."""
    if name in FLAGS:
        return FLAGS[name]
    name, _, value = name.partition("=")
    return FLAGS.get(name, "--" + name.replace("_", "-")) + (f" {value}" if value else "")


@functools.cache
def _known() -> frozenset[str]:
    """The parameter names the command line has a flag for: every command's options, FLAGS."""
    from .commands import all_commands

    options = {p.name for c in all_commands() for p in c.params if isinstance(p, click.Option)}
    return frozenset(options | {k.partition("=")[0] for k in FLAGS} | {"range"})


def flagify(message: str) -> str:
    """``message`` with every `parameter` that has a flag shown as that flag; other backquoted
    words (a library's own message quoted in ours: torch's `weights_only`) are left as they are."""
    def one(m: re.Match) -> str:
        return flag(m.group(1)) if m.group(1).partition("=")[0] in _known() else m.group(0)

    return _NAME.sub(one, message)
