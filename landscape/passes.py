"""This rank's batches on the device, pass by pass, each with its weight in the whole-set mean.

A first pass at construction counts each batch's real targets (its weight is count_b / Σ count,
the total all-reduced across ranks) and keeps the batches on the device while the whole set
stays under the cache budget; later passes replay the cache or read the stream afresh, one batch
at a time. Under torch.distributed batch b of the stream belongs to rank b mod W.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from . import distributed
from .batches import Inputs, head, nbytes, to_device
from .errors import InputError
from .losses import Loss
from .stream import BatchStream

CPU_CACHE_BYTES = 256 << 20


def cache_budget(device: torch.device) -> float:
    """Bytes of data kept on ``device`` between passes: 256 MiB on the CPU (beyond it a pass
    streams, so memory does not grow with the data set), a quarter of the free memory on a GPU
    (where a host-to-device copy per batch and pass is what caching saves)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 4
    return float(CPU_CACHE_BYTES)


class Passes:
    """The batches of ``stream`` this rank reads, on ``device`` in ``dtype``, with their weights.

    Args:
        stream: the source of batches.
        loss: gives each batch's count of real targets.
        cache: keep the batches on the device (True), never (False), or while the set stays
            under :func:`cache_budget` (None).
    """

    def __init__(self, stream: BatchStream, loss: Loss, device: torch.device,
                 dtype: torch.dtype, cache: bool | None = None) -> None:
        self.stream, self.device, self.dtype = stream, device, dtype
        budget = float("inf") if cache else cache_budget(device) if cache is None else 0.0
        indices, counts, sizes, held, kept = [], [], [], 0, []
        for b, batch in self._shard():
            indices.append(b)
            counts.append(loss.count(batch[1]))
            sizes.append(len(batch[1]))
            held += nbytes(batch)
            if kept is not None and held <= budget:
                kept.append(self._move(batch))
            else:
                kept = None
        totals = distributed.all_reduce(torch.tensor([sum(sizes), sum(counts)], dtype=torch.int64))
        self.n_samples, self.n_targets = int(totals[0]), int(totals[1])
        if self.n_samples == 0:
            raise InputError("the data set is empty: no samples to evaluate the loss on")
        if self.n_targets == 0:
            raise InputError("the data has no real targets (every label is -100)")
        self.indices = indices  # the stream positions of this rank's batches
        self.weights = [c / self.n_targets for c in counts]
        self.bytes = held
        self.kept: list[tuple[Inputs, Tensor]] | None = kept

    def _move(self, batch: tuple[Inputs, Tensor]) -> tuple[Inputs, Tensor]:
        return to_device(batch, self.device, self.dtype)

    def _shard(self) -> Iterator[tuple[int, tuple[Inputs, Tensor]]]:
        """(stream position, batch) of this rank's batches (every batch with one process)."""
        if distributed.world_size() == 1:
            return enumerate(self.stream)
        return self.stream.select(distributed.mine)  # a Dataset is read at this rank's items

    def __iter__(self) -> Iterator[tuple[int, float, Inputs, Tensor]]:
        """(stream position b, weight, inputs, targets) for this rank's batches with real
        targets; every rank's weights together sum to one."""
        source = self.kept
        if source is None:
            source = (self._move(batch) for _, batch in self._shard())
        seen = 0
        for b, w, (xb, yb) in zip(self.indices, self.weights, source):
            seen += 1
            if w > 0:
                yield b, w, xb, yb
        if seen != len(self.weights):
            raise InputError(
                f"the data gave {seen} batches on this pass but {len(self.weights)} on the first: "
                "every pass must read the same data"
            )

    def everything(self) -> list[tuple[Inputs, Tensor]]:
        """Every batch of the whole set (all ranks'), on the device."""
        if distributed.world_size() > 1 or self.kept is None:
            return [self._move(b) for b in self.stream]
        return list(self.kept)

    def first(self) -> tuple[Inputs, Tensor]:
        """The stream's first batch, on the device."""
        return self.kept[0] if self.kept and distributed.rank() == 0 else self._move(
            self.stream.head
        )

    def example_inputs(self, n: int) -> Inputs:
        return head(self.first()[0], n)
