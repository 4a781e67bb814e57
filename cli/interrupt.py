"""Ctrl-C: one line on stderr and exit status 130, wherever it lands.

Three handlers of SIGINT, one at a time:

- ``exit_now`` while nothing can be left half-done (the imports before the command runs, after it
  ended, and on a second Ctrl-C): print the line and end the process.
- ``raise_interrupted`` while a command runs: raise ``Interrupted``. It is a BaseException and
  not a KeyboardInterrupt, so click does not turn it into ``Abort`` (printing an empty line
  first), and no ``except Exception`` swallows it; ``cli/main.py`` prints the line. Whatever
  happens to the exception (a finaliser that swallows it, say), ``received`` stays set and the
  exit status is 130.
- inside ``deferred()`` (renaming a result and its plot into place), the signal is only noted,
  and acted on when the block ends, so that both files appear or neither.

A KeyboardInterrupt can be lost: raised inside a finaliser or a third-party ``except:`` that does
not re-raise, it vanished and the run went on to exit 0. Here the signal is remembered instead of
only raised: ``check()`` (called by every progress callback and before writing a result) raises
again, and a command that still ends normally exits 130 with the line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

EXIT_STATUS = 130


class Interrupted(BaseException):
    """Ctrl-C while a command runs."""


class _State:
    active = False  # inside running(): a command runs
    received = False  # a SIGINT arrived while a command ran
    said = False  # its one line has been printed
    deferring = False
    pending = False
    written: list[str] = []  # result files (and plots) renamed into place by this command


state = _State()


def reset() -> None:
    state.received = state.said = state.deferring = state.pending = False
    state.written = []


def line() -> str:
    """The one line: what the interrupted command left behind."""
    if state.written:
        return f"interrupted: {' and '.join(state.written)} had been written in full"
    return "interrupted: no result file was written"


def say(message: str | None = None) -> None:
    """Print the line (or ``message``, e.g. what a resumable run kept) once."""
    if not state.said:
        state.said = True
        sys.stderr.write((message or line()) + "\n")
        sys.stderr.flush()


def exit_now(signum: int = signal.SIGINT, frame: Any = None) -> None:
    state.received = True
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    say()
    os._exit(EXIT_STATUS)


def check() -> None:
    """Raise ``Interrupted`` if Ctrl-C was pressed during this command (and was lost)."""
    if state.active and state.received and not state.deferring:
        raise Interrupted


def _unraisable(hook: Any) -> Any:
    """``sys.unraisablehook`` that drops a Ctrl-C raised inside a finaliser silently (``check``
    acts on it) and passes everything else on."""

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, (Interrupted, KeyboardInterrupt)):
            hook(info)

    return unraisable


def raise_interrupted(signum: int = signal.SIGINT, frame: Any = None) -> None:
    state.received = True
    if state.deferring:
        state.pending = True
        return
    _install(exit_now)  # a second Ctrl-C does not wait for the first to unwind
    raise Interrupted


def _install(handler: Any) -> Any:
    """Set the SIGINT handler; return the previous one (None off the main thread, and when
    SIGINT is ignored: a process started with it ignored, as a background job of a script is,
    keeps ignoring it, as Python itself does)."""
    try:
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            return None
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        return None


def at_start() -> None:
    """When ``landscape`` runs as a program, from its very first import: end at once."""
    if os.path.basename(sys.argv[0]) in ("landscape", "-m"):
        _install(exit_now)


@contextlib.contextmanager
def running() -> Iterator[None]:
    """While a command runs: Ctrl-C raises ``Interrupted``; afterwards the old handler is back."""
    reset()
    previous = _install(raise_interrupted)
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    state.active = True
    try:
        yield
    finally:
        state.active = False
        sys.unraisablehook = hook
        if previous is not None:
            _install(previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block that Ctrl-C does not cut in two: a signal in it is acted on when it ends."""
    state.deferring = True
    try:
        yield
    finally:
        state.deferring = False
    if state.pending:
        state.pending = False
        _install(exit_now)
        raise Interrupted
