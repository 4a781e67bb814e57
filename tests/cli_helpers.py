"""Run the landscape command line in-process and capture what it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass

from click.testing import CliRunner

from landscape_cli.main import main


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str) -> CliRun:
    """``landscape ARGS...`` in the current directory; returns exit status, stdout, stderr."""
    runner = CliRunner()
    with runner.isolation() as (out, err, *_):
        code = main([str(a) for a in args])
        return CliRun(code, out.getvalue().decode(), err.getvalue().decode())
