"""Timing, peak memory and outcomes of one benchmark call.

A task is a zero-argument callable returning an :class:`Answer` (what it computed and how many
Hessian-vector products it spent). :func:`measure` runs it once to warm up, then ``repeats``
times, and keeps the median wall time, the largest peak memory and the last answer. A task that
raises is recorded as failed with its one-line message (and the time it ran before failing).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Answer:
    """What a task computed: ``values`` (eigenvalues, a trace, quadrature nodes...),
    ``weights`` (SLQ weights, when any), the matvecs spent and a free-form note."""

    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    matvecs: int = 0
    weights: np.ndarray | None = None
    note: str = ""


@dataclass
class Measurement:
    """The outcome of :func:`measure`: median seconds, all the timed seconds, peak memory
    (bytes above the baseline), the last answer, or the error that stopped it."""

    seconds: float
    times: list[float]
    peak_bytes: int
    answer: Answer | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(e: BaseException) -> str:
    """The exception's type and the first line of its message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak on CUDA, sampled process RSS on the CPU
    (tracemalloc does not see torch's allocations); both as bytes above the start."""

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _rss()
            self._max = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, _rss())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak = max(self._max, _rss()) - self._base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(task: Callable[[], Answer], device: torch.device, repeats: int = 5,
            warmup: int = 1, max_seconds: float | None = None) -> Measurement:
    """Run ``task`` ``warmup`` times, then ``repeats`` timed times (see module doc); with
    ``max_seconds``, fewer timed runs (at least one) when the warm-up says all of them would
    take longer than that, and none beyond the warm-up when it alone took longer, unless the
    task has ``prepares = True`` (its first call does set-up work a timed call must not hold,
    as eigenthings' step-count search does)."""
    return measure_together([task], device, repeats, warmup, max_seconds)[0]


def measure_together(tasks: list[Callable[[], Answer]], device: torch.device, repeats: int = 5,
                     warmup: int = 1, max_seconds: float | None = None) -> list[Measurement]:
    """:func:`measure` for several tasks with their runs interleaved, one run of each in turn:
    a slow spell of a shared machine then falls on all of them alike, and their ratios hold."""
    states = [_State(warmup + repeats) for _ in tasks]
    for i in range(warmup + repeats):
        for task, st in zip(tasks, states):
            if st.error is not None or i >= st.total:
                continue
            elapsed, peak, answer, error = _once(task, device)
            if error is not None:
                st.error, st.times = error, [elapsed]
            elif i >= warmup:
                st.times.append(elapsed)
                st.peak, st.answer = max(st.peak, peak), answer
            elif (i == warmup - 1 and max_seconds is not None and elapsed > max_seconds
                  and not getattr(task, "prepares", False)):
                st.times, st.peak, st.answer, st.total = [elapsed], peak, answer, i + 1
            else:
                st.answer = answer
                if i == warmup - 1 and max_seconds is not None and elapsed * repeats > max_seconds:
                    st.total = warmup + max(1, int(max_seconds // max(elapsed, 1e-9)))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return [Measurement(st.times[0], st.times, 0, None, st.error) if st.error is not None
            else Measurement(statistics.median(st.times), st.times, st.peak, st.answer)
            for st in states]


@dataclass
class _State:
    total: int
    times: list[float] = field(default_factory=list)
    peak: int = 0
    answer: Answer | None = None
    error: str | None = None


def _once(task: Callable[[], Answer], device: torch.device
          ) -> tuple[float, int, Answer | None, str | None]:
    """One run: (seconds, peak bytes, answer, one-line error or None)."""
    _sync(device)
    start = time.perf_counter()
    try:
        with PeakMemory(device) as mem:
            answer = task()
            _sync(device)
    except Exception as e:  # a reference tool failing is a result, not a crash
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return time.perf_counter() - start, 0, None, one_line(e)
    return time.perf_counter() - start, mem.peak, answer, None
