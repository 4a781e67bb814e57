"""Ctrl-C: one line on stderr, exit status 130, and a result file only with its plot."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import run_cli

import landscape.plots
from landscape_cli import interrupt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
RUN = ["spectrum", A, "--top-k", "2", "--max-samples", "256", "--no-density", "--device", "cpu",
       "-o", "r.h5", "--plot", "r.png"]


def _interrupt_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "interrupt" in line.lower()]


def _assert_clean(code: int, stderr: str, where: str) -> None:
    assert code == 130, (where, stderr)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, (where, stderr)
    assert len(_interrupt_lines(stderr)) == 1, (where, stderr)
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), (where, stderr)
    assert os.path.exists(where + "r.h5") == os.path.exists(where + "r.png"), (where, stderr)
    assert not [p for p in os.listdir(where or ".") if ".tmp" in p], (where, os.listdir(where))


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(autouse=True)
def sigint_default():
    """Python's own Ctrl-C handling, even when pytest was started with SIGINT ignored (as a
    background job of a script is)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _sigint_default() -> None:  # in the child, before Python starts
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_drawing_leaves_neither_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = landscape.plots.draw

    def draw(content, path, **options):  # noqa: ANN001
        _kill_self()
        return real(content, path, **options)

    monkeypatch.setattr(landscape.plots, "draw", draw)
    done = run_cli(*RUN)
    _assert_clean(done.code, done.stderr, "")
    assert not os.path.exists("r.h5")
    assert "no result file was written" in done.stderr


def test_ctrl_c_while_renaming_leaves_both_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = os.replace

    def replace(src, dst):  # noqa: ANN001
        if str(dst).endswith(".png"):
            _kill_self()
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    done = run_cli(*RUN)
    _assert_clean(done.code, done.stderr, "")
    assert os.path.exists("r.h5") and "r.h5 and r.png had been written in full" in done.stderr


class _Finaliser:
    def __del__(self) -> None:
        _kill_self()
        for _ in range(10_000):  # the signal's handler runs here, inside the finaliser
            pass


def test_ctrl_c_lost_in_a_finaliser_still_exits_130(tmp_path, monkeypatch) -> None:
    """A KeyboardInterrupt raised in a finaliser (or a library's bare ``except:``) is lost; the
    run went on and exited 0. The signal is remembered instead."""
    monkeypatch.chdir(tmp_path)
    real = landscape.plots.draw

    def draw(content, path, **options):  # noqa: ANN001
        _Finaliser()
        return real(content, path, **options)

    monkeypatch.setattr(landscape.plots, "draw", draw)
    done = run_cli(*RUN)
    _assert_clean(done.code, done.stderr, "")


def test_ctrl_c_swallowed_by_a_library_stops_at_the_next_progress_call(tmp_path) -> None:
    interrupt.reset()
    progress = __import__("landscape_cli.progress", fromlist=["Progress"]).Progress("x")
    with interrupt.running():
        try:
            _kill_self()
            for _ in range(10_000):
                pass
        except BaseException:  # what a bare `except:` in a library does
            pass
        with pytest.raises(interrupt.Interrupted):
            progress(1, 2)


@pytest.mark.slow
def test_sigint_at_random_moments_of_a_real_run(tmp_path) -> None:
    """SIGINT during the imports, the run, and the writing of the result and its plot."""
    cmd = [sys.executable, "-m", "landscape_cli.main", *RUN]
    whole = math.inf
    for _ in range(2):  # the first run warms the file cache; the faster one sets the time scale
        start = time.perf_counter()
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=120,
                       preexec_fn=_sigint_default)
        whole = min(whole, time.perf_counter() - start)
    assert (tmp_path / "r.h5").exists() and (tmp_path / "r.png").exists()
    rng = random.Random(17)
    fractions = ([rng.uniform(0.05, 0.4) for _ in range(3)]  # imports
                 + [rng.uniform(0.4, 0.8) for _ in range(4)]  # the run
                 + [rng.uniform(0.8, 0.98) for _ in range(3)])  # writing the .h5 and the plot
    interrupted = 0
    for i, fraction in enumerate(fractions):
        where = tmp_path / str(i)
        where.mkdir()
        proc = subprocess.Popen(cmd, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=_sigint_default)
        time.sleep(fraction * whole)
        if proc.poll() is not None:  # it ended before the signal: nothing to check
            proc.communicate()
            continue
        proc.send_signal(signal.SIGINT)
        interrupted += 1
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode == -signal.SIGINT:  # in the interpreter's last moments, after the
            # command had ended (Python resets SIGINT then): killed by it, as a shell's 130
            assert stderr.rstrip().endswith("wrote r.h5 and r.png"), stderr
            continue
        _assert_clean(proc.returncode, stderr, f"{where}/")
    assert interrupted >= 6  # a run may still end first on a loaded machine: not checked


@pytest.mark.parametrize("error", [ImportError("initialization failed"), ValueError("bad file")])
def test_ctrl_c_turned_into_another_error_still_exits_130(tmp_path, monkeypatch, error) -> None:
    """A SIGINT during a C extension's import (scipy's, say) comes out as ``ImportError:
    initialization failed``; a library may wrap it into its own error. Either is the Ctrl-C's
    doing: no traceback, no 'internal error', exit 130."""
    monkeypatch.chdir(tmp_path)

    def draw(content, path, **options):  # noqa: ANN001
        try:
            _kill_self()
            for _ in range(10_000):
                pass
        except BaseException:
            raise error from None

    monkeypatch.setattr(landscape.plots, "draw", draw)
    done = run_cli(*RUN)
    _assert_clean(done.code, done.stderr, "")
    assert "internal error" not in done.stderr and "error:" not in done.stderr


def test_the_console_script_ends_at_once_after_a_ctrl_c(tmp_path, monkeypatch, capsys) -> None:
    """After the line, entry() ends the process with os._exit(130) and skips the interpreter's
    shutdown, where a native thread the signal cut short once aborted it (SIGABRT, exit -6);
    a run without a Ctrl-C exits through sys.exit as before."""
    from landscape_cli import main as cli_main

    monkeypatch.chdir(tmp_path)
    ended: list[tuple[str, int]] = []

    def os_exit(code: int) -> None:
        ended.append(("os._exit", code))
        raise SystemExit(code)

    monkeypatch.setattr(cli_main.os, "_exit", os_exit)
    monkeypatch.setattr(landscape.plots, "draw", lambda *a, **k: _kill_self())
    monkeypatch.setattr(sys, "argv", ["landscape", *RUN])
    with pytest.raises(SystemExit):
        cli_main.entry()
    assert ended == [("os._exit", 130)]
    assert capsys.readouterr().err.rstrip().endswith("interrupted: no result file was written")
    monkeypatch.undo()
    monkeypatch.setattr(cli_main.os, "_exit", os_exit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["landscape", *RUN])
    with pytest.raises(SystemExit) as done:
        cli_main.entry()
    assert done.value.code == 0 and ended == [("os._exit", 130)]
