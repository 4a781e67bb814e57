"""BatchStream.select: a rank reads only its own batches of a map-style Dataset, and gets the
same batches as reading everything and keeping its share."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from landscape.stream import BatchStream


class Counting(Dataset):
    """23 items (x, y); counts the items read."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(23, 3, generator=g), torch.arange(23) % 4
        self.reads = 0

    def __len__(self) -> int:
        return 23

    def __getitem__(self, i: int):
        self.reads += 1
        return self.x[i], self.y[i]


def _same(a, b) -> None:
    assert [i for i, _ in a] == [i for i, _ in b]
    for (_, (xa, ya)), (_, (xb, yb)) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("make,max_samples", [
    (lambda d: d, None),
    (lambda d: DataLoader(d, batch_size=5), None),
    (lambda d: DataLoader(d, batch_size=5, shuffle=True), None),  # read in order instead
    (lambda d: DataLoader(d, batch_size=5, drop_last=True), None),
    (lambda d: DataLoader(d, batch_size=5), 12),
    (lambda d: DataLoader(d, batch_size=5, drop_last=True), 21),
])
def test_a_rank_reads_only_its_batches(make, max_samples):
    data = Counting()
    stream = BatchStream(make(data), batch_size=5, max_samples=max_samples)
    everything = [(b, batch) for b, batch in enumerate(stream) if b % 2 == 1]
    data.reads = 0
    odd = list(stream.select(lambda b: b % 2 == 1))
    _same(odd, everything)
    assert data.reads == sum(len(y) for _, (_, y) in odd) < 23
    assert list(stream.select(lambda b: False)) == []


def test_other_sources_are_filtered_whole():
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 2, generator=g), torch.arange(4)) for _ in range(5)]
    stream = BatchStream(batches)
    _same(list(stream.select(lambda b: b != 2)),
          [(b, x) for b, x in enumerate(stream) if b != 2])
