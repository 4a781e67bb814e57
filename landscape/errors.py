"""Errors the command line turns into one line on stderr and an exit status.

Exit status (DESIGN.md): 2 bad input or usage, 3 a numerical failure. 1 is reserved for
``landscape check`` gates that fail.
"""

from __future__ import annotations


class LandscapeError(Exception):
    """An expected failure with a message fit for a user; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class InputError(LandscapeError):
    """Bad input: a missing or unreadable file, a spec that does not import, mismatched keys."""

    exit_code = 2


class NumericalError(LandscapeError):
    """A numerical failure: non-finite loss, an unrecoverable Lanczos breakdown."""

    exit_code = 3
