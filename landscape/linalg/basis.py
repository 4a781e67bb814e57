"""Storage of a Krylov basis V = [v_0; v_1; ...] (rows) for Lanczos with full reorthogonalisation.

The rows live in segments that double the total each time one fills (64, 64, 128, 256, ...
rows, and at most ``SEGMENT_BYTES`` a segment beyond one row), so nothing is reserved for steps
that never run: at GPT-2-small size one row is 0.5 GB. A segment goes on the operator's
device while it takes at most ``HOST_BASIS_FRACTION`` of the free GPU memory, and on the host
after that: a short run on a large model keeps its whole basis on the GPU, and a long one
spills only its later rows. :func:`rows_that_fit` bounds the whole basis by the free memory of
both places; :meth:`KrylovBasis.rotate` replaces the rows by combinations of them in place, for
thick restarts. Reorthogonalisation is classical Gram-Schmidt applied twice
(Giraud, Langou, Rozloznik 2005), each segment's share computed where the segment lives.
"""

from __future__ import annotations

import math

import torch

from landscape import memplan

__all__ = ["KrylovBasis", "HOST_BASIS_FRACTION", "gpu_room", "rows_that_fit"]

HOST_BASIS_FRACTION = 0.5  # on CUDA, new segments go to the host beyond this share of free memory
FIRST_ROWS = 64
SEGMENT_BYTES = 1 << 30  # most bytes one segment reserves (a segment holds at least one row)
ROTATE_BYTES = 64 << 20  # column chunk of the in-place rotation (rows x chunk, per step)
HOST_MARGIN = 1 << 30  # host bytes a new host segment must leave free (see KrylovBasis.room)


def gpu_room(device: torch.device) -> float:
    """Bytes a Krylov basis may take on ``device``: ``HOST_BASIS_FRACTION`` of the free memory
    of a CUDA device, unbounded elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return math.inf
    free, _ = torch.cuda.mem_get_info(device)
    return HOST_BASIS_FRACTION * free


def rows_that_fit(P: int, dtype: torch.dtype, device: torch.device | str,
                  reserve_rows: int = 0) -> int:
    """How many basis rows of length P fit: on a CUDA device its ``HOST_BASIS_FRACTION`` share
    plus the host's; on the host ``memplan.SHARE`` of the free memory less ``reserve_rows`` rows
    kept for the operator's own vectors.

    Args:
        P: length of one row.
        dtype: the rows' dtype.
        device: the operator's device.
        reserve_rows: P-vectors the caller holds beside the basis.

    Returns:
        The most rows (0 when not even one fits)."""
    device = torch.device(device)
    row = memplan.vector_bytes(P, dtype)
    on_gpu = int(gpu_room(device) // row) if device.type == "cuda" else 0
    return on_gpu + memplan.rows_that_fit(P, dtype, "cpu", 1.0, reserve_rows)


class KrylovBasis:
    """Up to ``cap`` rows of length P. ``on_host``: True puts every segment on the host, False
    every one on ``device``, None decides per segment (see the module docstring)."""

    def __init__(self, P: int, cap: int, dtype: torch.dtype, device: torch.device,
                 on_host: bool | None = None, first_rows: int | None = None) -> None:
        self.P, self.cap, self.dtype, self.device = P, cap, dtype, torch.device(device)
        self.on_host = on_host
        self.first_rows = first_rows or FIRST_ROWS
        self.segments: list[torch.Tensor] = []
        self.counts: list[int] = []
        self.n = 0

    def _place(self, rows: int) -> torch.device:
        if self.on_host is True:
            return torch.device("cpu")
        if self.on_host is False:
            return self.device
        need = rows * self.P * torch.finfo(self.dtype).bits // 8
        return self.device if need <= gpu_room(self.device) else torch.device("cpu")

    @property
    def devices(self) -> list[torch.device]:
        """Where each segment lives."""
        return [s.device for s in self.segments]

    def _next_rows(self) -> int:
        """Rows of the next segment: the total doubles, at most SEGMENT_BYTES, at least one."""
        rows = min(max(self.first_rows, self.n), self.cap - self.n)
        row_bytes = self.P * torch.finfo(self.dtype).bits // 8
        return max(1, min(rows, SEGMENT_BYTES // max(row_bytes, 1)))

    def room(self) -> bool:
        """Whether one more row fits: below ``cap``, and in the last segment or in a new one that
        leaves ``HOST_MARGIN`` of the host's free memory (measured now, so the operator's kept
        graphs and its temporaries are counted as they are, not as estimated)."""
        if self.n >= self.cap:
            return False
        if self.counts and self.counts[-1] < self.segments[-1].shape[0]:
            return True
        rows = self._next_rows()
        if self._place(rows).type == "cuda":
            return True
        need = rows * self.P * torch.finfo(self.dtype).bits // 8
        return memplan.available_bytes("cpu") - need >= HOST_MARGIN

    def append(self, v: torch.Tensor) -> None:
        """Add one row (v has length P, on any device)."""
        if self.n >= self.cap:
            raise ValueError(f"the basis is full ({self.cap} rows)")
        if not self.counts or self.counts[-1] == self.segments[-1].shape[0]:
            rows = self._next_rows()
            dev = self._place(rows)
            self.segments.append(torch.empty((rows, self.P), dtype=self.dtype, device=dev))
            self.counts.append(0)
        seg = self.segments[-1]
        seg[self.counts[-1]] = v.to(seg.device)
        self.counts[-1] += 1
        self.n += 1

    def rotate(self, Q: torch.Tensor) -> None:
        """Replace the n rows V by the l rows Qᵀ V (Q of shape (n, l), l <= n), in place: the
        product is formed a block of columns at a time, so it needs no second basis. Segments
        past the l-th row are freed."""
        n, l = Q.shape
        if n != self.n or l > n:
            raise ValueError(f"rotate needs Q of shape ({self.n}, l <= {self.n}), "
                             f"got {tuple(Q.shape)}")
        home = self.segments[0].device
        Q = Q.to(device=home, dtype=self.dtype)
        width = max(1, ROTATE_BYTES // max(n * torch.finfo(self.dtype).bits // 8, 1))
        for start in range(0, self.P, width):
            cols = slice(start, min(start + width, self.P))
            block = torch.cat([V[:, cols].to(home) for V in self._filled()])  # (n, width)
            new = Q.T @ block
            row = 0
            for seg, c in zip(self.segments, self.counts):
                take = min(c, l - row)
                if take <= 0:
                    break
                seg[:take, cols] = new[row:row + take].to(seg.device)
                row += take
        kept, row = 0, 0
        while row < l:
            row += self.counts[kept]
            kept += 1
        self.segments, self.counts = self.segments[:kept], self.counts[:kept]
        if kept:
            self.counts[-1] -= row - l
        self.n = l

    def _filled(self) -> list[torch.Tensor]:
        return [s[:c] for s, c in zip(self.segments, self.counts)]

    def coefficients(self, w: torch.Tensor) -> torch.Tensor:
        """V w (length n, on w's device)."""
        parts = [(V @ w.to(V.device)).to(w.device) for V in self._filled()]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def combine(self, Y: torch.Tensor) -> torch.Tensor:
        """Y V for Y of shape (k, n) or (n,), on Y's device."""
        out, start = None, 0
        for V in self._filled():
            term = (Y[..., start:start + V.shape[0]].to(V.device) @ V).to(Y.device)
            out = term if out is None else out + term
            start += V.shape[0]
        if out is None:
            return torch.zeros(Y.shape[:-1] + (self.P,), dtype=self.dtype, device=Y.device)
        return out

    def orthogonalise(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Remove the basis components from w, twice; return (w, summed coefficients)."""
        if len(self.segments) == 1 and self.segments[0].device == w.device:
            V = self.segments[0][: self.n]  # the common case, without the general bookkeeping
            h = V @ w
            w = torch.addmv(w, V.T, h, alpha=-1)
            h2 = V @ w
            return torch.addmv(w, V.T, h2, alpha=-1), h + h2
        h = self.coefficients(w)
        w = w - self.combine(h)
        h2 = self.coefficients(w)
        return w - self.combine(h2), h + h2
