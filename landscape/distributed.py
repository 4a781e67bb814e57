"""torch.distributed glue: which rank this is, the shard of batches it reads, and the sums.

Launched by ``torchrun`` (or any launcher that sets RANK, WORLD_SIZE and the rendezvous address:
SLURM's ``srun`` sets SLURM_PROCID and SLURM_NTASKS, read when RANK is absent), every process
opens the same Problem; batch b of the stream belongs to rank b mod W, and every whole-set
reduction is a sum all-reduced across ranks (Σ sum_b and Σ count_b, so means stay exact). Random
probes and directions come from the same seed on every rank, and all-reduced sums are the same
bits everywhere, so every rank runs the same Krylov iteration. One process is the plain case:
rank 0 of 1, and every function here is a no-op. Every collective in the package goes through
this module.
"""

from __future__ import annotations

import atexit
import datetime
import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import LandscapeError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("LANDSCAPE_DIST_TIMEOUT", "600")))


def _group() -> Any:
    """torch.distributed once torch is imported and a process group is up, else None (reading
    the rank must not import torch: ``landscape --help`` asks it)."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


class PeerError(LandscapeError):
    """A collective failed because another rank stopped (its own message says why)."""

    exit_code = 2


def _env(name: str, slurm: str, default: str) -> int:
    return int(os.environ.get(name) or os.environ.get(slurm) or default)


def world_size() -> int:
    """How many processes run this command (1 without a launcher)."""
    dist = _group()
    return dist.get_world_size() if dist else _env("WORLD_SIZE", "SLURM_NTASKS", "1")


def rank() -> int:
    """This process's rank (0 without a launcher)."""
    dist = _group()
    return dist.get_rank() if dist else _env("RANK", "SLURM_PROCID", "0")


def local_rank() -> int:
    """The rank on this machine, which picks ``cuda:LOCAL_RANK``."""
    return _env("LOCAL_RANK", "SLURM_LOCALID", "0")


def is_main() -> bool:
    """Whether this process writes files, prints and draws progress (rank 0)."""
    return rank() == 0


def init(device: torch.device) -> None:
    """Join the process group once (NCCL on GPUs, Gloo on CPUs) when launched with W > 1."""
    import torch
    import torch.distributed as dist

    if world_size() <= 1 or dist.is_initialized():
        return
    os.environ.setdefault("RANK", str(rank()))
    os.environ.setdefault("WORLD_SIZE", str(world_size()))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=TIMEOUT)
    atexit.register(close)


def close() -> None:
    """Leave the process group (at exit; safe to call twice)."""
    dist = _group()
    if dist:
        dist.destroy_process_group()


def mine(index: int) -> bool:
    """Whether batch ``index`` of the stream belongs to this rank."""
    return index % world_size() == rank()


def all_reduce(t: Tensor) -> Tensor:
    """``t`` summed over every rank, in place (``t`` itself with one process)."""
    dist = _group()
    if dist is None or world_size() <= 1:
        return t
    on_gpu = dist.get_backend() == "nccl"
    work = t.cuda() if on_gpu and not t.is_cuda else t
    try:
        dist.all_reduce(work)
    except RuntimeError as e:
        raise PeerError(f"another rank stopped during a reduction ({_first_line(e)})") from e
    if work is not t:
        t.copy_(work)
    return t


def gather(value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (``[value]`` with one process)."""
    dist = _group()
    if dist is None or world_size() <= 1:
        return [value]
    out: list[Any] = [None] * world_size()
    try:
        dist.all_gather_object(out, value)
    except RuntimeError as e:
        raise PeerError(f"another rank stopped during a gather ({_first_line(e)})") from e
    return out


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
