"""Option defaults from TOML: ``--config FILE``, ``landscape.toml`` and ``[tool.landscape]``.

Top-level keys apply to every command; a table named after a command (``[spectrum]``) applies to
that command only. Keys use the option names (``batch-size`` or ``batch_size``). Flags given on the
command line always win (they are click's ``default_map``). A key that is no option, or a table
that is no command, is refused with the closest valid name; an error about a value that came
from a file names the file.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from landscape.errors import InputError


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"config file {path!r} not found") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"config file {path!r} is not valid TOML: {e}") from None


def _config_flag(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _norm(table: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("-", "_"): v for k, v in table.items()}


# command name -> {option name (underscores) -> its flags, e.g. ("-o", "--out")}
Options = dict[str, dict[str, tuple[str, ...]]]


def _closest(word: str, choices: Iterable[str], what: str) -> str:
    near = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean {what} {near[0].replace('_', '-')!r}?" if near else ""


# Keys a command's table may hold besides its options: `check` reads its rules and one table of
# options per analysis itself (cli/commands/check.py), so a check for unknown keys lets them by.
TABLE_KEYS = {"check": {"rules", "inspect", "spectrum", "trace", "sharpness", "ghost", "lmc"}}


def _check(where: str, source: dict[str, Any], options: Options) -> None:
    """Refuse a key that is no option of any command, a table that is no command, and a key of
    a command's table that is not one of its options, naming the closest valid name."""
    every = {k for opts in options.values() for k in opts}
    for key, value in source.items():
        if isinstance(value, dict):
            if key not in options:
                hint = _closest(key, options, "the command table")
                raise InputError(f"{where}: [{key}] is not a command{hint}")
            for k in value:
                if k.replace("-", "_") not in options[key] and k not in TABLE_KEYS.get(key, ()):
                    hint = _closest(k.replace("-", "_"), options[key], "option")
                    raise InputError(f"{where}: [{key}] {k!r} is not an option of {key}{hint}")
        elif key.replace("-", "_") not in every:
            hint = _closest(key.replace("-", "_"), every, "option")
            raise InputError(f"{where}: {key!r} is not an option of any command{hint}")


@dataclass
class Config:
    """click's default_map and, per command and option, the file each default came from."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    options: Options = field(default_factory=dict)

    def source(self, argv: list[str], name: str | None) -> str | None:
        """The config file behind option ``name`` in this invocation, or None when the
        command line gave it (or no file did)."""
        command = next((a for a in argv if a in self.sources), None)
        if command is None or name is None:
            return None
        name = name.replace("-", "_")
        flags = self.options.get(command, {}).get(name, (f"--{name.replace('_', '-')}",))
        given = any(a == f or a.startswith(f"{f}=") for a in argv for f in flags)
        return None if given else self.sources[command].get(name)

    def annotate(self, message: str, argv: list[str]) -> str:
        """'--device cuda: ...' -> '--device cuda (from landscape.toml): ...' where the value
        came from a config file."""
        m = re.match(r"--([A-Za-z][\w-]*)( [^\s:]+)?", message)
        path = self.source(argv, m.group(1)) if m else None
        if m is None or path is None:
            return message
        return f"{message[: m.end()]} (from {path}){message[m.end():]}"


def load_config(argv: list[str], options: Options | Callable[[], Options]) -> Config:
    """The defaults of the config files found for this invocation, checked against ``options``
    (or what calling it gives: it is called only when a config file is found, so that a run
    without one imports no command it does not run).

    Sources in rising priority: ``[tool.landscape]`` in pyproject.toml, landscape.toml, --config.
    Within one source a command's own table beats the top-level keys.
    """
    sources: list[tuple[str, dict[str, Any]]] = []
    if os.path.exists("pyproject.toml"):
        table = _read("pyproject.toml").get("tool", {}).get("landscape", {})
        sources.append(("pyproject.toml [tool.landscape]", table))
    if os.path.exists("landscape.toml"):
        sources.append(("landscape.toml", _read("landscape.toml")))
    flag = _config_flag(argv)
    if flag is not None:
        sources.append((flag, _read(flag)))
    if not sources:
        return Config()
    if callable(options):
        options = options()
    out = Config({n: {} for n in options}, {n: {} for n in options}, options)
    for where, source in sources:
        _check(where, source, options)
        shared = _norm({k: v for k, v in source.items() if not isinstance(v, dict)})
        for name in options:
            own = _norm(source.get(name, {}))
            for table in (shared, own):
                out.defaults[name].update(table)
                out.sources[name].update(dict.fromkeys(table, where))
    return out


def default_map(argv: list[str], options: Options) -> dict[str, dict[str, Any]]:
    """click's default_map built from the config files found for this invocation."""
    return load_config(argv, options).defaults
