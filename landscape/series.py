"""The side outputs of ``landscape track``: a CSV table and TensorBoard scalars, one row (step)
per checkpoint. Written by rank 0 alone; the CSV atomically, like every result file."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import distributed
from .errors import InputError
from .results import atomic


def write_csv(path: str, columns: dict[str, Any]) -> None:
    """Equal-length ``columns`` (name -> values) as a CSV file with a header row, atomically."""
    if not distributed.is_main():  # rank 0 alone writes
        return
    import csv

    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i in range(n):
            writer.writerow([_csv_cell(columns[k][i]) for k in names])


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "" if math.isnan(v) else repr(v)  # NaN: no value; inf stays inf (an lr-0 row)
    return value.decode() if isinstance(value, bytes) else value


def write_tensorboard(
    directory: str, scalars: dict[str, Any], steps: Any, prefix: str = ""
) -> None:
    """Each finite value of ``scalars[name][i]`` as a TensorBoard scalar at ``steps[i]``.

    Needs the ``tensorboard`` package (``pip install "landscape[tensorboard]"``).
    """
    if not distributed.is_main():  # rank 0 alone writes
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError(
            '`tensorboard` needs the tensorboard package: pip install "landscape[tensorboard]"'
        ) from None
    writer = SummaryWriter(log_dir=directory)
    try:
        for name, values in scalars.items():
            for step, value in zip(steps, values):
                if value is not None and math.isfinite(float(value)):
                    writer.add_scalar(f"{prefix}{name}", float(value), int(step))
    finally:
        writer.close()
