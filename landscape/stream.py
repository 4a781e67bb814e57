"""A re-iterable stream of batches, read afresh on every pass over the data set.

The source is in-memory tensors ``(x, y)`` (cut into ``batch_size`` slices), a ``DataLoader``, a
map-style ``Dataset`` (batched in order), a list of batches, or a factory (a function returning
any of these, called once per pass). Every pass must see the same batches: a shuffling
``DataLoader`` is read with a sequential sampler instead (the whole-set mean does not depend on
the order), and a source whose first batch differs between two passes (random augmentation) or
that can be read only once is refused, since curvature products need the same objective on every
matvec. ``max_samples`` cuts the stream after that many samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from .batches import Batch, head, same, split_batch
from .errors import InputError


def _ordered(loader: DataLoader, notes: list[str]) -> DataLoader:
    """``loader`` itself, or the same loader with a sequential sampler when it shuffles."""
    sampler = getattr(loader.batch_sampler, "sampler", loader.sampler)
    if isinstance(sampler, SequentialSampler):
        return loader
    if not isinstance(sampler, RandomSampler):
        if "random" in type(sampler).__name__.lower() or getattr(sampler, "shuffle", False):
            raise InputError(
                f"data: the DataLoader's sampler {type(sampler).__name__} draws a random order; "
                "curvature products need the same batches on every pass: use shuffle=False"
            )
        return loader  # a sampler of the user's own: the two-pass check below still applies
    if sampler.replacement or sampler.num_samples != len(loader.dataset):
        raise InputError(
            "data: the DataLoader draws a random subset (RandomSampler with replacement or "
            "num_samples); curvature products need the same batches on every pass"
        )
    notes.append("the DataLoader shuffles; it is read in order instead (the whole-set mean is "
                 "the same, and every pass must see the same batches)")
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, shuffle=False, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
    )


def _index_batches(source: Any, max_samples: int | None) -> list[list[int]] | None:
    """The dataset indices of each batch of ``source`` when it is a DataLoader reading a sized
    map-style dataset in order with a plain batch size (else None)."""
    if not isinstance(source, DataLoader) or source.batch_size is None:
        return None
    if not isinstance(source.sampler, SequentialSampler) or not hasattr(source.dataset, "__len__"):
        return None
    if type(source.batch_sampler).__name__ != "BatchSampler":  # a batch sampler of the user's
        return None
    n, bs = len(source.dataset), source.batch_size
    stop = n - (n % bs if source.drop_last else 0)
    if max_samples is not None:  # as __iter__ cuts: the batch that crosses it is cut to fit
        stop = min(stop, max_samples)
    return [list(range(a, min(a + bs, stop))) for a in range(0, stop, bs)]


class BatchStream:
    """Batches ``(inputs, targets)`` on the CPU (or wherever the source keeps them), pass by pass.

    Args:
        source: tensors ``(x, y)``, a DataLoader, a Dataset, a list of batches, or a factory.
        batch_size: the batch size for tensors and Datasets (a DataLoader keeps its own).
        max_samples: stop after this many samples (the last batch is cut to fit).
    """

    def __init__(self, source: Any, batch_size: int = 256, max_samples: int | None = None) -> None:
        if batch_size < 1:
            raise InputError(f"`batch_size` must be positive, got {batch_size}")
        if max_samples is not None and max_samples < 1:
            raise InputError(f"`max_samples` must be positive, got {max_samples}")
        self.batch_size = batch_size
        self.max_samples = max_samples
        self.notes: list[str] = []
        self._factory: Callable[[], Any] | None = None
        self._source: Any = None
        if callable(source) and not isinstance(source, (DataLoader, Dataset, Tensor)):
            self._factory = source
        else:
            self._source = self._prepare(source)
            if iter(self._source) is self._source:
                raise InputError(
                    "data is a one-shot iterator (a generator?): every pass must read the data "
                    "afresh; pass a list, a DataLoader, or a function returning a new iterable"
                )
        self._check_repeatable()

    def _prepare(self, obj: Any) -> Iterable:
        if isinstance(obj, DataLoader):
            return _ordered(obj, self.notes)
        if isinstance(obj, Dataset) and hasattr(obj, "__len__"):
            return DataLoader(obj, batch_size=self.batch_size, shuffle=False)
        if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(
            isinstance(t, Tensor) for t in obj
        ):
            x, y = obj
            if len(x) != len(y):
                raise InputError(f"data has {len(x)} inputs but {len(y)} targets")
            bs = self.batch_size
            return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]
        if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, Tensor)):
            return obj
        raise InputError(
            f"data of type {type(obj).__name__} is not a source of batches: pass (x, y) tensors, "
            "a DataLoader, a Dataset, a list of batches or a function returning one"
        )

    def _open(self) -> Iterable:
        if self._factory is None:
            return self._source
        try:
            made = self._factory()
        except InputError:
            raise
        except Exception as exc:  # user code
            raise InputError(f"the data factory raised: {type(exc).__name__}: {exc}") from exc
        return self._prepare(made)

    def __iter__(self) -> Iterator[Batch]:
        left = self.max_samples
        for item in self._open():
            inputs, targets = split_batch(item)
            if left is not None:
                if left <= 0:
                    return
                if len(targets) > left:
                    inputs, targets = head(inputs, left), targets[:left]
                left -= len(targets)
            yield inputs, targets

    def select(self, keep: Callable[[int], bool]) -> Iterator[tuple[int, Batch]]:
        """(position b, batch) for the batches with ``keep(b)``, in order. A map-style Dataset
        read in order (a Dataset, or a DataLoader with a sequential sampler) is read only at the
        kept batches' indices, so a rank of W reads about 1/W of the items; every other source
        is read whole and filtered."""
        source = self._open()
        plan = _index_batches(source, self.max_samples)
        if plan is None:
            yield from ((b, batch) for b, batch in enumerate(self) if keep(b))
            return
        wanted = [(b, idx) for b, idx in enumerate(plan) if keep(b)]
        if not wanted:
            return
        loader = DataLoader(
            source.dataset, batch_sampler=[idx for _, idx in wanted],
            num_workers=source.num_workers, collate_fn=source.collate_fn,
            pin_memory=source.pin_memory, timeout=source.timeout,
            worker_init_fn=source.worker_init_fn,
        )
        for (b, _), item in zip(wanted, loader):
            yield b, split_batch(item)

    def first(self) -> Batch:
        """The first batch of a fresh pass."""
        for batch in self:
            return batch
        raise InputError("the data set is empty: no samples to evaluate the loss on")

    def _check_repeatable(self) -> None:
        self.head = self.first()  # the first batch, kept: loss resolution and checks read it
        if not same(self.head, self.first()):
            raise InputError(
                "data: two passes gave different first batches (a random sampler or random "
                "augmentation?); curvature products need the same objective on every pass: "
                "make the data deterministic"
            )


def is_tensor_pair(data: Any, targets: Any) -> bool:
    """Whether ``Problem(model, data, targets)`` was given the in-memory tensors form."""
    return targets is not None or (
        isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)
    )

