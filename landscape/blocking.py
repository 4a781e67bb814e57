"""How many probes a curvature operator pushes through one vmapped product: chosen by measuring.

A block of k probes through ``vmap`` shares one forward pass but pays vmap's batching rules and
k times the tangents' memory; on a CPU that was slower per probe than k single double-backward
products for the MLP and GPT of issue 16 (and 7x the memory on a 470k-parameter GPT), on a GPU
faster. Neither a fixed size nor the device type decides it, so the first multi-probe call of
an operator times its own first rows on the first batch: one row alone, twice, keeping the
quicker (after one untimed row that builds the kept gradient graph and, given rows enough, an
untimed pair through vmap, whose first call in a process costs seconds; on a shared CPU one
timing of a 1.9M-parameter GPT's product read 725 ms where the next run's read 580, and a block
of 8 won at 619 ms with 2.9x the memory and a slower trace), then blocks of 4, 8, 16 (32 on a
GPU) while rows remain and each is no more than 10% slower per probe than the best so far
(ResNet-18 on a CPU took 2.8 s a probe alone, 4.4 in a block of 4, and trying 8 and 16 cost a
minute of a 7-minute trace), and keeps the size with the least time per probe for the rest of
its work, a larger one only when it beats the smaller by 10% (one timing on a shared machine is
noisy, and a block of 16 held 11x the memory of single products on the 466k GPT for about the
same time per probe, 0.53 s against 0.45 s). Sizes are capped by the memory plan
(:mod:`landscape.memplan`: PRODUCT_VECTORS P-vectors a probe) and by ``chunk``.
On a CPU, a single product quicker than ``QUICK_SECONDS`` ends the measurement at size 1 unless
``torch.func`` has already run in this process: the first vmapped product in a process costs
0.4-3.7 s here (transform set-up), more than a block could save over a few hundred products of
a few milliseconds (the demo's `trace` ran 9.2 s with single products against 12.4 s when it
measured blocks).
Every row is computed independently, so the choice changes results only by round-off; probes,
their order and the matvec count are untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from . import memplan

CANDIDATES = (1, 4, 8, 16)
CANDIDATES_GPU = (1, 4, 8, 16, 32)

MARGIN = 0.9  # a larger block is kept only when it is at least 10% faster per probe
QUICK_SECONDS = 0.01  # on a CPU, single products quicker than this are kept (see the module)
_warm = False  # whether a vmapped product has run in this process
clock = time.perf_counter  # monkeypatched in tests


class BlockChooser:
    """The probe-block size of one operator: fixed (``chunk``) or measured once (see module)."""

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device,
                 chunk: int | None = None) -> None:
        self.device = torch.device(device)
        gpu = self.device.type == "cuda"
        cap = memplan.rows_that_fit(size, dtype, self.device, memplan.PRODUCT_VECTORS)
        cands = [c for c in (CANDIDATES_GPU if gpu else CANDIDATES) if c <= max(cap, 1)]
        self.candidates = cands
        self.size: int | None = chunk
        self.seconds: dict[int, float] = {}  # time per probe of each measured size
        self.how = f"{chunk} (--chunk)" if chunk else ""
        if chunk is None and len(cands) == 1:
            self.size, self.how = 1, "1 (the memory plan allows no larger block)"

    @property
    def deciding(self) -> bool:
        return self.size is None

    def cap(self, chunk: int | None) -> int:
        """The block size to use now (never above ``chunk``, the out-of-memory fallback's cap)."""
        size = self.size or 1
        return min(size, chunk) if chunk else size

    def _tick(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return clock()

    def measure(self, rows: Callable[[int, int], None], k: int) -> int:
        """Run ``rows(a, z)`` on the first rows of a k-row block, timing each candidate size;
        decide the size and return the first row not yet done."""
        global _warm
        rows(0, 1)  # untimed: builds the kept gradient graph, warms the allocator
        a = 1
        if a + 1 <= k:
            t0 = self._tick()
            rows(a, a + 1)
            self.seconds[1] = self._tick() - t0
            a += 1
            quick = self.seconds[1] < QUICK_SECONDS and self.device.type != "cuda"
            if quick and not _warm and len(self.candidates) > 1:
                self.size = 1
                self.how = (f"1 (single products take {1e3 * self.seconds[1]:.3g} ms on the CPU: "
                            "a block would not repay vmap's first call in this process)")
                return a
            if a + 1 <= k and len(self.candidates) > 1:  # a second timing: the quicker counts
                t0 = self._tick()
                rows(a, a + 1)
                self.seconds[1] = min(self.seconds[1], self._tick() - t0)
                a += 1
        if k >= a + 2 + 4 and len(self.candidates) > 1:  # untimed: vmap's first call
            rows(a, a + 2)
            a += 2
            _warm = True
        for c in self.candidates[1:]:
            if a + c > k:
                break
            t0 = self._tick()
            rows(a, a + c)
            self.seconds[c] = (self._tick() - t0) / c
            a += c
            if MARGIN * self.seconds[c] > min(self.seconds.values()):
                break  # slower per probe than a smaller block: larger ones are not tried
        if len(self.seconds) >= 2:  # else measure again on the next call with more rows
            best = min(self.seconds)
            for c in sorted(self.seconds):  # a larger block must pay for its memory
                if self.seconds[c] < MARGIN * self.seconds[best]:
                    best = c
            timed = ", ".join(f"{c}: {1e3 * s:.3g} ms" for c, s in self.seconds.items())
            self.size = best
            self.how = f"{best} (measured per probe on the first batch: {timed})"
        return a
