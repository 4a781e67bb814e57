"""The ``landscape`` command: a click group, config defaults and the exit-status contract.

Exit status: 0 success, 1 a rule of ``landscape check`` failed, 2 bad input or usage (one line on stderr, no
traceback), 3 a numerical failure, 4 an internal error (a bug: traceback shown).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

import click

from landscape import __version__
from landscape.errors import LandscapeError

from . import interrupt
from .commands import LazyGroup, all_commands
from .config import Config, load_config
from .flags import flagify


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="landscape")
def cli() -> None:
    """Measure the loss geometry of a PyTorch checkpoint.

    \b
    Start with the demo checkpoint that ships with the project:
      landscape inspect data/demo_a.pt
      landscape spectrum data/demo_a.pt --top-k 5
    """


def _options() -> dict[str, dict[str, tuple[str, ...]]]:
    """Each command's options by name, with their flags (what a config file may set)."""
    return {
        c.name: {p.name: tuple(p.opts) for p in c.params if isinstance(p, click.Option)}
        for c in all_commands()
        if c.name
    }


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    with interrupt.running():
        try:
            code = _run(args)
            interrupt.state.deferring = True  # the command is over: a Ctrl-C now is only noted
        except interrupt.Interrupted:  # between the command's end and the line above
            code = interrupt.EXIT_STATUS
        interrupt.state.deferring = True
        if interrupt.state.received:  # also when the command ran on (its interrupt was lost)
            interrupt.say()
            code = interrupt.EXIT_STATUS
    if code and _world_size() > 1:  # end this rank now: its peers' collectives then fail fast
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _world_size() -> int:
    from landscape import distributed

    return distributed.world_size()


@contextlib.contextmanager
def _quiet_unless_rank0():
    """Under torchrun, ranks other than 0 print nothing while the command runs (its errors are
    still printed: the handlers below run after the streams are restored)."""
    from landscape import distributed

    if distributed.is_main():
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        yield


def _run(argv: list[str]) -> int:
    config = Config()
    try:
        config = load_config(argv, _options)
        with _quiet_unless_rank0():
            return int(
                cli.main(
                    args=argv, prog_name="landscape", standalone_mode=False,
                    default_map=config.defaults,
                )
                or 0
            )
    except click.exceptions.Exit as e:
        return e.exit_code
    except (interrupt.Interrupted, KeyboardInterrupt):
        return _interrupted()
    except click.Abort as e:  # a KeyboardInterrupt click caught (not our SIGINT handler's)
        interrupt.say(None if isinstance(e.__context__, KeyboardInterrupt) else "aborted")
        return interrupt.EXIT_STATUS
    except Exception as e:
        if interrupt.state.received:  # the Ctrl-C's doing, whatever error it came out as
            return _interrupted()
        return _report(e, config, argv)


def _interrupted() -> int:
    """Ctrl-C: its one line, exit 130. An error raised after one is the Ctrl-C's doing, not bad
    input or a bug: a C extension whose import the signal cut short raises ``ImportError:
    initialization failed``, and a loader may wrap the ``Interrupted`` into its own error."""
    interrupt.say()
    return interrupt.EXIT_STATUS


def _report(e: Exception, config: Config, argv: list[str]) -> int:
    """One line on stderr and exit 2 (bad usage or input; 3 numerical) for an error the user can
    act on; the traceback and exit 4 for anything else, a bug in landscape."""
    if isinstance(e, click.UsageError):
        where = e.ctx.command_path if e.ctx else "landscape"
        param = getattr(e, "param", None)
        path = config.source(argv, param.name if param is not None else None)
        origin = f" (from {path})" if path else ""
        click.echo(
            f"{where}: error: {e.format_message()}{origin} (see '{where} --help')", err=True
        )
        return 2
    if isinstance(e, click.ClickException):
        click.echo(f"landscape: error: {e.format_message()}", err=True)
        return 2
    if isinstance(e, LandscapeError):
        if type(e).__name__ != "PeerError":  # the failing rank has said why
            click.echo(f"landscape: error: {config.annotate(flagify(str(e)), argv)}", err=True)
        return e.exit_code
    traceback.print_exc()
    click.echo("landscape: internal error (please report it with the traceback)", err=True)
    return 4


def entry() -> None:
    """The console script: exit with main()'s status. After a Ctrl-C the process ends at once,
    as ``interrupt.exit_now`` does: the line is printed and nothing is left to finish, while
    a native thread the signal cut short can abort the interpreter's shutdown ("Fatal Python
    error: PyThreadState_Get ... finalizing", SIGABRT instead of 130; seen once in CI)."""
    code = main()
    if interrupt.state.received:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
