"""A progress bar on stderr for the library's ``progress(done, total)`` callbacks."""

from __future__ import annotations

import sys
import time

from . import interrupt

LINE_SECONDS = 10.0  # without a terminal (a CI log), one progress line this often


class Progress:
    """Draws ``label [####    ] done/total unit`` on stderr when it is a terminal; otherwise
    prints such a line every ``LINE_SECONDS``, so a long run in a CI log is not silent."""

    def __init__(self, label: str, unit: str = "matvecs", enabled: bool | None = None) -> None:
        self.label = label
        self.unit = unit
        self.enabled = True if enabled is None else enabled
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self._last = 0.0 if self.tty else self.start
        self._drawn = False

    def __call__(self, done: int, total: int | None = None) -> None:
        interrupt.check()  # a Ctrl-C that a library swallowed stops the run here
        now = time.perf_counter()
        if not self.enabled or now - self._last < (0.1 if self.tty else LINE_SECONDS):
            return
        if not self.tty:
            self._last = now
            of = f"/{total}" if total else ""
            sys.stderr.write(f"{self.label}: {done}{of} {self.unit}, {now - self.start:.0f}s\n")
            sys.stderr.flush()
            return
        self._last = now
        elapsed = now - self.start
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(24 * frac)
            text = f"\r{self.label} [{bar:<24}] {done}/{total} {self.unit} {elapsed:5.1f}s"
        else:
            text = f"\r{self.label} {done} {self.unit} {elapsed:5.1f}s"
        sys.stderr.write(text)
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False
