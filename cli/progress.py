"""A progress bar on stderr for the library's ``progress(done, total)`` callbacks."""

from __future__ import annotations

import sys
import time


class Progress:
    """Draws ``label [####    ] done/total unit`` on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, unit: str = "matvecs", enabled: bool | None = None) -> None:
        self.label = label
        self.unit = unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.1:
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
