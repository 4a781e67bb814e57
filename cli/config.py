"""Option defaults from TOML: ``--config FILE``, ``landscape.toml`` and ``[tool.landscape]``.

Top-level keys apply to every command; a table named after a command (``[spectrum]``) applies to
that command only. Keys use the option names (``batch-size`` or ``batch_size``). Flags given on the
command line always win (they are click's ``default_map``).
"""

from __future__ import annotations

import os
import sys
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


def default_map(argv: list[str], commands: list[str]) -> dict[str, dict[str, Any]]:
    """click's default_map built from the config files found for this invocation.

    Sources in rising priority: ``[tool.landscape]`` in pyproject.toml, landscape.toml, --config.
    Within one source a command's own table beats the top-level keys.
    """
    sources: list[dict[str, Any]] = []
    if os.path.exists("pyproject.toml"):
        sources.append(_read("pyproject.toml").get("tool", {}).get("landscape", {}))
    if os.path.exists("landscape.toml"):
        sources.append(_read("landscape.toml"))
    flag = _config_flag(argv)
    if flag is not None:
        sources.append(_read(flag))
    out: dict[str, dict[str, Any]] = {name: {} for name in commands}
    for source in sources:
        shared = _norm({k: v for k, v in source.items() if not isinstance(v, dict)})
        for name in commands:
            own = source.get(name, {})
            out[name].update(shared)
            out[name].update(_norm(own if isinstance(own, dict) else {}))
    return out


# Keys a command's table may hold besides its options: `check` reads its rules and one table of
# options per analysis itself (cli/commands/check.py), so a check for unknown keys lets them by.
TABLE_KEYS = {"check": {"rules", "inspect", "spectrum", "trace", "sharpness", "ghost", "lmc"}}
