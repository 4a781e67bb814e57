"""The one table from the library's Python parameter names to this command line's flags.

Library errors name a parameter in backquotes (`batch_size`); the command line shows the flag
(--batch-size), and `name=value` the flag with its value. A name not in the table becomes
--name-with-dashes.
"""

from __future__ import annotations

import re

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


def flagify(message: str) -> str:
    """``message`` with every `parameter` shown as its flag."""
    return _NAME.sub(lambda m: flag(m.group(1)), message)
