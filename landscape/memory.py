"""Memory before it fails: the peak of one curvature-vector product, estimated before the first.

The tensors autograd saves in the loss's forward pass are counted with
``torch.autograd.graph.saved_tensors_hooks`` on the first 2 and 4 samples of the first batch;
half their difference is the activation memory a per sample, the rest (weights saved by matmuls and
the like) a fixed part f. A Hessian-vector product by double backward keeps the forward graph,
the gradient's graph built over it and the second backward's temporaries: about
``GRAPH_FACTOR`` = 3 times the forward's saved tensors (a rule of thumb, not a measurement).
With B samples per batch and g gradient graphs kept between products,

    peak ≈ g · 3 · (f + a·B) + 4 · P · itemsize   (θ, gradient, vector, product),

where the operator keeps the graphs of all batches (g = their number, at most ``CACHED_BATCHES``)
when that peak is at most ``KEEP_SHARE`` of the free memory, and otherwise rebuilds each batch's
graph for every product (g = 1, about 1.5 times the time: ``benchmarks/RESULTS.md``).

against the free memory: CUDA's ``mem_get_info``, or ``MemAvailable`` of ``/proc/meminfo``. It is
said in a note above 1 GiB or a quarter of the free memory, and refused above all of it.
The Krylov basis (P · itemsize per vector) spills from a GPU to the host and is not counted
here; :func:`basis_rows` bounds it by what is left beside one product.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from . import memplan
from .batches import head
from .errors import InputError
from .problem import Problem

GRAPH_FACTOR = 3.0
CACHED_BATCHES = 4  # keep the gradient graphs of at most this many batches between products
KEEP_SHARE = 0.5  # ... when they take at most this share of the free memory
BASIS_SHARE = 0.9  # of the host memory left beside one product that a Krylov basis may take
_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # problem -> (a, f)
LOUD = float(1 << 30)  # estimates above this many bytes are said even when they fit


@dataclass
class MemoryEstimate:
    """Bytes: per-sample activations, the fixed part, one product's peak and what is free."""

    per_sample: float
    fixed: float
    peak: float
    free: float | None
    batch_size: int
    graphs: int

    @property
    def fits(self) -> bool:
        return self.free is None or self.peak <= self.free

    def batch_size_that_fits(self, vectors: float) -> int:
        """The largest batch size whose peak stays under the free memory (0 when none)."""
        if self.free is None or self.per_sample <= 0:
            return self.batch_size
        room = (self.free - vectors) / (self.graphs * GRAPH_FACTOR) - self.fixed
        return max(int(room // self.per_sample), 0)


def size(n: float) -> str:
    """Bytes for a human: 512 B, 3.1 KiB, 4.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.3g} GiB"  # pragma: no cover


def free_bytes(device: torch.device) -> float | None:
    """Free memory on ``device`` (None where it cannot be read)."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _saved(problem: Problem, n: int) -> float:
    """Bytes autograd saves for the loss on the first ``n`` samples (parameters not counted)."""
    x, y = problem.data.first()
    own = {t.untyped_storage().data_ptr() for t in problem.fixed.values()}
    theta = problem.theta.detach().requires_grad_(True)
    own.add(theta.untyped_storage().data_ptr())
    seen: set[int] = set()
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        ptr = t.untyped_storage().data_ptr() if t.device.type != "meta" else id(t)
        if ptr not in own and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        problem.batch_loss(theta, head(x, n), y[:n])
    return float(total)


def _measured(problem: Problem) -> tuple[float, float]:
    """(activation bytes per sample, fixed bytes) saved by the loss's forward, measured once."""
    if problem not in _MEASURED:  # the forward passes once per problem (open, then solvers)
        batch = len(problem.data.first()[1])
        more = min(4, batch)  # from 2 samples up: batch norm needs more than one
        two, four = _saved(problem, 2), _saved(problem, more)
        per_sample = max(four - two, 0.0) / (more - 2) if more > 2 else two / max(batch, 1)
        _MEASURED[problem] = (per_sample, max(two - 2 * per_sample, 0.0))
    return _MEASURED[problem]


def estimate(problem: Problem, graphs: int | None = None) -> MemoryEstimate:
    """The estimated peak of one Hessian-vector product of ``problem`` (see the module doc),
    with ``graphs`` gradient graphs kept (default: as the operator will keep them)."""
    batch = len(problem.data.first()[1])  # the first batch is the largest one
    per_sample, fixed = _measured(problem)
    vectors = 4.0 * problem.size * problem.theta.element_size()
    free = free_bytes(problem.device)
    graph = GRAPH_FACTOR * (fixed + per_sample * batch)
    if graphs is None:
        many = problem.n_batches if problem.n_batches <= CACHED_BATCHES else 1
        graphs = many if free is None or many * graph + vectors <= KEEP_SHARE * free else 1
    return MemoryEstimate(per_sample, fixed, graphs * graph + vectors, free, batch, graphs)


def keeps_graphs(problem: Problem) -> bool:
    """Whether a curvature operator keeps every batch's gradient graph between products: for at
    most ``CACHED_BATCHES`` batches whose graphs fit in ``KEEP_SHARE`` of the free memory (kept
    too where the model defeats the estimate)."""
    if problem.n_batches > CACHED_BATCHES:
        return False
    try:
        return estimate(problem).graphs == problem.n_batches
    except (RuntimeError, ValueError, TypeError, IndexError):  # a model of the user's own
        return True


def check(problem: Problem) -> str | None:
    """A note with the estimate when it matters (over ``LOUD`` bytes or a quarter of the free
    memory; None below); ``InputError`` suggesting a ``batch_size`` when it won't fit."""
    try:
        e = estimate(problem)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # a model of the user's own
        return f"memory: not estimated ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    free = "unknown" if e.free is None else size(e.free)
    note = (f"memory: one curvature product needs about {size(e.peak)} on {problem.device} "
            f"({size(e.per_sample)} of activations per sample kept for double backward, batch "
            f"{e.batch_size}, {e.graphs} graph(s) kept); {free} free")
    if not e.fits:
        fit = e.batch_size_that_fits(4.0 * problem.size * problem.theta.element_size())
        advice = f"use `batch_size` {fit} or less" if fit > 0 else "use a smaller model or dtype"
        raise InputError(f"{note}: it will not fit; {advice}")
    return note if e.peak > LOUD or (e.free is not None and e.peak > e.free / 4) else None



def basis_rows(problem: Problem, steps: int) -> int | None:
    """The most Krylov basis vectors an eigensolver of ``problem`` may keep, when ``steps`` of
    them would not fit beside one product (None: no bound needed): ``BASIS_SHARE`` of the host
    memory left free once the product's estimated peak (on the CPU) and 4 vectors are set
    aside, plus on a GPU its own share (``landscape.linalg.basis``). Beyond the bound Lanczos
    restarts thickly and SLQ runs are shortened."""
    from .linalg.basis import gpu_room

    P, dtype = problem.size, problem.dtype
    row = memplan.vector_bytes(P, dtype)
    free = memplan.available_bytes("cpu")
    if steps * row <= memplan.SHARE * free / 4:
        return None
    reserve = 4.0 * row
    if problem.device.type != "cuda":
        try:
            reserve += estimate(problem).peak
        except (RuntimeError, ValueError, TypeError, IndexError):  # a model of the user's own
            reserve += 0.3 * free
    on_gpu = int(gpu_room(problem.device) // row) if problem.device.type == "cuda" else 0
    return on_gpu + int(BASIS_SHARE * max(free - reserve, 0.0) // row)
