"""Memory planning before blocks of P-vectors are allocated.

A block of k probe vectors of P parameters takes k·P·itemsize bytes; the estimators keep a few
such blocks at once (XTrace: the test vectors W, A W, its orthonormal basis Q and A Q, and a
copy inside the QR factorisation), and a vmapped product holds several P-sized tangents per
probe besides. On a CPU nothing stops a run from asking for more than the machine has: the
kernel kills the process without a message. So the row counts are planned from P and the free
memory first (``MemAvailable`` of ``/proc/meminfo`` on Linux, the free pages from
``os.sysconf`` elsewhere, ``torch.cuda.mem_get_info`` on a GPU), and a run that cannot fit is
refused with the figures.
"""

from __future__ import annotations

import os

import torch

from .errors import InputError

SHARE = 0.7  # of the free memory the planned blocks may take (the rest: model, activations)
PRODUCT_VECTORS = 4  # P-sized tensors one probe of a vmapped product holds (θ tangent, ∇ tangent..)


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory on ``device`` in bytes: ``torch.cuda.mem_get_info`` on CUDA; on the host
    ``MemAvailable`` (Linux: free plus reclaimable page cache), else free pages x page size."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: plan as if unlimited


def gib(n: float) -> str:
    """Bytes as '1.23 GiB' (MiB below one GiB, KiB below one MiB)."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def vector_bytes(size: int, dtype: torch.dtype) -> int:
    """Bytes of one P-vector of ``dtype``."""
    return int(size) * torch.finfo(dtype).bits // 8


def rows_that_fit(size: int, dtype: torch.dtype, device: torch.device | str, blocks: float,
                  extra_rows: int = 0) -> int:
    """The most rows k with (blocks·k + extra_rows)·P·itemsize <= SHARE x the free memory."""
    room = SHARE * available_bytes(device) - extra_rows * vector_bytes(size, dtype)
    return max(int(room // (blocks * vector_bytes(size, dtype))), 0)


def plan_run(method: str, matvecs: int, size: int, dtype: torch.dtype,
             device: torch.device | str, product_rows: int = 1) -> tuple[int, str]:
    """The most matvecs one ``method`` run may spend and still fit in memory (at least
    ``matvecs`` when unconstrained), and a note when that is fewer than ``matvecs``.

    Blocks held at the peak, in rows of P: XTrace 5·s (s = m/2 test vectors: W, A W, the QR
    copy, Q, A Q), Hutch++ 4·m/3, XDiag 8·s (W, A W, Q, A Q, the two leave-one-out rotations
    and the float64 terms), Hutchinson (draws of 32) none beyond the product; plus
    ``product_rows`` x PRODUCT_VECTORS for the vmapped product. Raises InputError (exit 2)
    when even the smallest run (6 matvecs) does not fit."""
    per_matvec = {"xtrace": 5 / 2, "hutchpp": 4 / 3, "xdiag": 4}.get(method)
    if per_matvec is None:
        return max(matvecs, 1 << 62), ""
    extra = product_rows * PRODUCT_VECTORS
    fit = int(rows_that_fit(size, dtype, device, per_matvec, extra))
    fit -= fit % (3 if method == "hutchpp" else 2)
    if fit >= matvecs:
        return fit, ""
    need = (per_matvec * 6 + extra) * vector_bytes(size, dtype)
    have = available_bytes(device)
    if fit < 6:
        raise InputError(
            f"not enough memory for {method} on {size:,} parameters: its smallest run (6 matvecs) "
            f"needs about {gib(need / SHARE)} free, {gib(have)} is available; use `--method "
            "hutchinson` (one probe block at a time) or a machine with more memory"
        )
    note = (
        f"{'diagonal' if method == 'xdiag' else 'trace'}: {method} runs of {fit} matvecs, not "
        f"{matvecs}: {matvecs} would need about "
        f"{gib((per_matvec * matvecs + extra) * vector_bytes(size, dtype))} for its blocks of "
        f"{size:,} parameters, {gib(have)} is available"
    )
    return fit, note
