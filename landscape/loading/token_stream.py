"""A flat stream of token ids in a binary file, cut into rows: nanoGPT's ``train.bin``/``val.bin``.

The file is the ids one after another in ``dtype`` (``uint16`` as nanoGPT's ``prepare.py`` writes
them; ``uint32`` for vocabularies over 65,536), with no header. It is read through a memory
map, so only the rows kept are read: row i is ids[i·T : (i+1)·T] for ``block_size`` T, the
windows not overlapping, and the tail shorter than T left out. ``causal-lm`` then scores T − 1
next tokens per row (nanoGPT's own estimate takes T + 1 tokens per window, which a model with T
positions cannot be given whole).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError

SUFFIX = ".bin"
DTYPES = ("uint16", "uint32", "int32", "int64")


def read_stream(path: str, kwargs: dict[str, Any], max_samples: int | None = None) -> Tensor:
    """The first ``max_samples`` rows (all by default) of ``block_size`` ids, as int64 (N, T).

    Args:
        path: the file of ids.
        kwargs: ``block_size`` (required: the rows' length, a model's context) and ``dtype``
            (default ``uint16``).
        max_samples: how many rows to keep.
    """
    unknown = sorted(set(kwargs) - {"block_size", "dtype"})
    if unknown:
        raise InputError(f"a token stream (.bin) takes `data_kwargs` block_size and dtype, "
                         f"not {unknown[0]!r}")
    size = kwargs.get("block_size")
    if size is None:
        raise InputError(f"{path} is a stream of token ids: give the rows' length with "
                         "`data_kwargs` '{\"block_size\": T}' (a checkpoint's model_args "
                         "block_size is taken by itself)")
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise InputError(f"`data_kwargs` block_size must be an integer >= 2, got {size!r}")
    dtype = kwargs.get("dtype", "uint16")
    if dtype not in DTYPES:
        raise InputError(f"`data_kwargs` dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    itemsize = np.dtype(dtype).itemsize
    length = os.path.getsize(path)
    if length % itemsize:
        raise InputError(f"{path} holds {length} bytes, not a whole number of {dtype} ids: "
                         "another dtype?")
    rows = length // itemsize // size
    if rows == 0:
        raise InputError(f"{path} holds {length // itemsize} ids, fewer than one row of "
                         f"block_size {size}")
    keep = rows if max_samples is None else min(rows, max_samples)
    ids = np.memmap(path, dtype=dtype, mode="r", shape=(keep * size,))
    return torch.from_numpy(np.array(ids, dtype=np.int64).reshape(keep, size))
