"""Start-up: --help, argument errors and `show` import neither torch nor the analyses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from landscape_cli import choices
from landscape_cli.commands import SHORT, load

HEAVY = ("torch", "scipy", "matplotlib")

PROBE = f"""
import json, sys
from landscape_cli.main import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _imports(args: list[str], cwd: str | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["spectrum", "--help"], ["track", "--help"], ["surface", "--help"],
     ["spectrum", "--top-k", "x", "data/demo_a.pt"], ["nosuch"], ["show", "missing.h5"]],
)
def test_help_and_errors_do_not_import_torch(args: list[str]) -> None:
    seen = _imports(args)
    assert seen["heavy"] == []
    assert seen["code"] == (0 if "--help" in args else 2)


def test_show_of_a_result_does_not_import_torch(tmp_path) -> None:
    from landscape.analyses.inspect import InspectResult
    from landscape.results import RunInfo, write_result

    empty = np.zeros(1)
    result = InspectResult(format="state_dict", loss=1.0, accuracy=0.5, grad_norm=2.0,
                           param_norm=3.0, layers=["w"], counts=np.ones(1, dtype=int),
                           norms=empty, grad_norms=empty)
    write_result(str(tmp_path / "r.h5"), result, RunInfo(command="inspect"))
    assert _imports(["show", "r.h5"], cwd=str(tmp_path)) == {"code": 0, "heavy": []}


def test_short_help_is_each_commands_own() -> None:
    for name in SHORT:
        command = load(name)
        assert command.name == name
        assert (command.help or "").splitlines()[0] == SHORT[name][1]


def test_every_command_module_is_listed() -> None:
    import pkgutil

    import landscape_cli.commands as package

    for info in pkgutil.iter_modules(package.__path__):
        module = __import__(f"landscape_cli.commands.{info.name}", fromlist=["COMMANDS"])
        for command in module.COMMANDS:
            assert SHORT[command.name][0] == info.name


def test_choices_are_the_librarys() -> None:
    from landscape.analyses import blockwise, surface_directions, trace, track
    from landscape.curvature import CURVATURES
    from landscape.linalg.eigsh import SOLVERS
    from landscape.linalg.lanczos import WHICH

    assert choices.CURVATURES == CURVATURES
    assert choices.WHICH == WHICH
    assert choices.SOLVERS == SOLVERS
    assert choices.METHODS == trace.METHODS
    assert choices.NORMS == surface_directions.NORMS
    assert choices.IGNORES == surface_directions.IGNORES
    assert choices.METRICS == track.METRICS
    assert choices.GROUP_PRESETS == tuple(blockwise.PRESETS)
