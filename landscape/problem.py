"""Problem: the model as a pure function of one flat parameter vector, the data, the loss.

Everything downstream sees L(θ) = Σ_b sum_b(θ) / Σ_b count_b, the whole-data-set mean over real
targets (samples, or target tokens for a language model), whatever the batching or padding:
batch b's mean L_b is weighted by count_b / Σ count. The flat-vector <-> parameter-dict mapping
lives here and nowhere else.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from . import distributed
from .batches import Inputs, as_output, call_args, head
from .compat import set_tf32
from .errors import InputError, NumericalError
from .losses import Loss, LossFn, resolve_loss
from .passes import Passes
from .stream import BatchStream, is_tensor_pair


@dataclass(frozen=True)
class Block:
    """A contiguous slice ``[start, stop)`` of θ holding the parameters ``names``."""

    name: str
    start: int
    stop: int
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.stop - self.start


def _strip_running_stats(model: nn.Module) -> nn.Module:
    """A copy whose norm layers always use batch statistics (train mode without buffer writes)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return model.train()


class Problem:
    """A model, a stream of batches and a loss, seen as functions of a flat θ.

    ``data`` is the inputs tensor with ``targets`` beside it (cut into ``batch_size`` slices),
    or any re-iterable source of batches: a ``DataLoader``, a ``Dataset``, a list of
    ``(inputs, targets)`` or of dicts with ``labels``, or a function returning one of these (see
    :mod:`landscape.stream`). Each pass reads the source afresh and moves one batch at a time to
    the device, unless the whole set fits the cache budget (``cache``: None decides by size,
    True always, False never); ``cached`` says which. ``loss`` (kept as ``loss_fn``) is a name, a
    :class:`~landscape.losses.Loss` or a function ``(output, target) -> mean loss``.

    ``params`` (a regular expression) restricts θ to the matching ``requires_grad`` parameters;
    the others are held fixed. The model runs in eval mode unless ``train_mode`` (then norm layers
    use batch statistics and dropout is active). On CUDA, TF32 is switched off process-wide, or on
    with ``tf32`` (faster, products ~1e-3 off; see :func:`landscape.compat.set_tf32`).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        targets: Tensor | None = None,
        loss: str | Loss | LossFn | None = None,
        batch_size: int = 256,
        params: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        train_mode: bool = False,
        tf32: bool = False,
        max_samples: int | None = None,
        cache: bool | None = None,
    ) -> None:
        in_memory = is_tensor_pair(data, targets)
        if targets is not None:
            if len(data) == 0:
                raise InputError("the data set is empty: no samples to evaluate the loss on")
            data = (data, targets)
        self.stream = BatchStream(data, batch_size=batch_size, max_samples=max_samples)
        self.notes: list[str] = list(self.stream.notes)
        self.device = torch.device(device)
        self.dtype = dtype
        if self.device.type == "cuda":
            set_tf32(tf32)
        distributed.init(self.device)
        self.train_mode = train_mode
        model = _strip_running_stats(model) if train_mode else model.eval()
        self.model = model.to(device=self.device, dtype=dtype)
        self.loss_fn: Loss = resolve_loss(loss, self.stream.head[1], self.stream.head[0])
        if loss is None and self.loss_fn.name == "causal-lm":
            self.notes.append("the targets are the input token ids: the loss is causal-lm (the "
                              "next token's); pass `loss` to choose another")
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if params is not None:
            try:
                pattern = re.compile(params)
            except re.error as e:
                raise InputError(f"`params` {params!r} is not a regular expression: {e}") from None
            named = [(n, p) for n, p in named if pattern.search(n)]
            if not named:
                raise InputError(f"`params` {params!r} matches no trainable parameter")
        if not named:
            raise InputError("the model has no trainable parameters")
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        chosen = set(self.names)
        self.fixed = {n: p.detach() for n, p in self.model.named_parameters() if n not in chosen}
        self.fixed.update({n: b for n, b in self.model.named_buffers()})
        self.batch_size = batch_size
        self.data = Passes(self.stream, self.loss_fn, self.device, dtype,
                           cache if cache is not None else (True if in_memory else None))
        self._check_forward()

    # -- the flat vector ------------------------------------------------------------------
    @property
    def size(self) -> int:
        """P, the number of entries of θ."""
        return self.theta.numel()

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """θ (P,) -> {name: view of θ with the parameter's shape}."""
        parts = torch.split(theta, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """{name: tensor} -> one flat vector in θ's order (missing names raise KeyError)."""
        return torch.cat([tensors[n].reshape(-1).to(self.theta) for n in self.names])

    def blocks(self) -> list[Block]:
        """θ cut by module: one block per module owning parameters (``layer1.0.conv1``...)."""
        out: list[Block] = []
        start = 0
        for name, numel in zip(self.names, self.numels):
            owner = name.rsplit(".", 1)[0] if "." in name else name
            if out and out[-1].name == owner and out[-1].stop == start:
                last = out[-1]
                out[-1] = Block(owner, last.start, start + numel, last.names + (name,))
            else:
                out.append(Block(owner, start, start + numel, (name,)))
            start += numel
        return out

    # -- data -----------------------------------------------------------------------------
    @property
    def cached(self) -> bool:
        """Whether the whole data set is kept on the device between passes."""
        return self.data.kept is not None

    @property
    def n_samples(self) -> int:
        return self.data.n_samples

    @property
    def n_targets(self) -> int:
        """Σ count_b: the real targets of the whole set (all ranks)."""
        return self.data.n_targets

    @property
    def weights(self) -> list[float]:
        return self.data.weights

    @property
    def n_batches(self) -> int:
        """This rank's batches."""
        return len(self.data.weights)

    @property
    def batches(self) -> list[tuple[Inputs, Tensor]]:
        """Every batch of the whole set on the device, as a list (all ranks' batches; it reads
        the whole set: for small data and tests)."""
        return self.data.everything()

    def iter_indexed(self) -> Iterator[tuple[int, float, Inputs, Tensor]]:
        """(stream position b, weight count_b/Σcount, inputs_b, targets_b) for this rank's
        batches with real targets (:class:`~landscape.passes.Passes`)."""
        return iter(self.data)

    def iter_batches(self) -> Iterator[tuple[float, Inputs, Tensor]]:
        """(weight, inputs, targets) of :meth:`iter_indexed`; sums over them must go through
        :func:`landscape.distributed.all_reduce` to cover every rank."""
        return ((w, xb, yb) for _, w, xb, yb in self.data)

    def example_inputs(self, n: int = 8) -> Inputs:
        """The first ``n`` samples' inputs, on the device (for tracing the model)."""
        return self.data.example_inputs(n)

    # -- evaluation -----------------------------------------------------------------------
    def forward(self, theta: Tensor, x: Inputs) -> Tensor:
        """The model's output on inputs x with the selected parameters taken from θ."""
        args, kwargs = call_args(x)
        out = functional_call(self.model, {**self.fixed, **self.unflatten(theta)}, args, kwargs)
        return out if isinstance(out, Tensor) else as_output(out)[0]

    def batch_loss(self, theta: Tensor, x: Inputs, y: Tensor) -> Tensor:
        """The mean loss over one batch's real targets."""
        return self.loss_fn(self.forward(theta, x), y)

    @property
    def loss_name(self) -> str:
        return self.loss_fn.name

    def _theta(self, theta: Tensor | None) -> Tensor:
        return self.theta if theta is None else theta.to(self.theta)

    def loss(self, theta: Tensor | None = None) -> float:
        """The whole-data-set mean loss L(θ)."""
        return self.evaluate(theta)["loss"]

    def evaluate(self, theta: Tensor | None = None) -> dict[str, float | None]:
        """Whole-data-set mean loss Σ sum_b / Σ count_b and (for a classification) accuracy, the
        share of argmax hits among the real targets, at θ."""
        theta = self._theta(theta)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = 0
        classify = self.loss_fn.is_classification
        with torch.no_grad():
            for w, xb, yb in self.iter_batches():
                out = self.forward(theta, xb)
                total += w * self.loss_fn(out, yb).double()
                if classify:
                    correct += self.loss_fn.correct(out, yb)
        if distributed.world_size() > 1:
            both = distributed.all_reduce(torch.stack([total, total.new_tensor(float(correct))]))
            total, correct = both[0], int(both[1])
        loss = float(total)
        if not torch.isfinite(torch.tensor(loss)):
            raise NumericalError(f"the loss is not finite ({loss}) at these parameters")
        return {"loss": loss, "accuracy": correct / self.n_targets if classify else None}

    def loss_and_grad(self, theta: Tensor | None = None) -> tuple[float, Tensor]:
        """(L(θ), ∇L(θ)) over the whole data set; untouched parameters get a zero gradient.

        At the problem's own θ the pair is computed once and remembered (keyed on the θ tensor
        and its version counter, so a new or modified θ is recomputed); callers get a copy."""
        if theta is None:
            key = (id(self.theta), self.theta._version)
            cached = getattr(self, "_grad_at_theta", None)
            if cached is None or cached[0] != key:
                cached = (key, *self._loss_and_grad(self.theta))
                self._grad_at_theta = cached
            return cached[1], cached[2].clone()
        return self._loss_and_grad(self._theta(theta))

    def _loss_and_grad(self, theta: Tensor) -> tuple[float, Tensor]:
        """Σ_b w_b (L_b, ∇L_b) by plain autograd (cheaper than torch.func.grad here) with one
        leaf per parameter, made once for all batches, and the gradients added into views of
        the flat result: no split of a flat leaf in every batch's graph and no P-sized
        concatenation in every backward (17% of a gradient on the 466k GPT of issue 16)."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros_like(theta)
        slots = [g.view(s) for g, s in zip(torch.split(grad, self.numels), self.shapes)]
        leaves = [t.detach().requires_grad_(True) for t in self.unflatten(theta).values()]
        params = {**self.fixed, **dict(zip(self.names, leaves))}
        for w, xb, yb in self.iter_batches():
            args, kwargs = call_args(xb)
            with torch.enable_grad():
                out = functional_call(self.model, params, args, kwargs)
                out = out if isinstance(out, Tensor) else as_output(out)[0]
                value = self.loss_fn(out, yb)
                gs = torch.autograd.grad(value, leaves, allow_unused=True)
            for slot, g in zip(slots, gs):
                if g is not None:
                    slot.add_(g, alpha=w)
            total += w * value.detach().double()
        distributed.all_reduce(total)
        distributed.all_reduce(grad)
        loss = float(total)
        if not torch.isfinite(total) or not torch.isfinite(grad).all():
            raise NumericalError(f"the loss or its gradient is not finite (loss {loss})")
        return loss, grad

    def per_sample_outputs(self, theta: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(output, target) per batch at θ, without gradients."""
        theta = self._theta(theta)
        with torch.no_grad():
            for _, xb, yb in self.iter_batches():
                yield self.forward(theta, xb), yb

    @property
    def is_classification(self) -> bool:
        return self.loss_fn.is_classification

    # -- derived problems -----------------------------------------------------------------
    def with_theta(self, theta: Tensor) -> Problem:
        """A shallow copy whose current point is θ (the data and model are shared)."""
        other = copy.copy(self)
        other.theta = theta.detach().to(self.theta).clone()
        return other

    def restrict(self, names: Sequence[str]) -> Problem:
        """The same problem with θ cut down to ``names``; the other parameters are held fixed."""
        keep = set(names)
        unknown = keep.difference(self.names)
        if unknown:
            raise InputError(f"unknown parameters: {', '.join(sorted(unknown))}")
        current = self.unflatten(self.theta)
        other = copy.copy(self)
        other.fixed = {**self.fixed, **{n: t for n, t in current.items() if n not in keep}}
        idx = [i for i, n in enumerate(self.names) if n in keep]
        other.names = [self.names[i] for i in idx]
        other.shapes = [self.shapes[i] for i in idx]
        other.numels = [self.numels[i] for i in idx]
        other.theta = torch.cat([current[n].reshape(-1) for n in other.names]).clone()
        return other

    def _check_forward(self) -> None:
        xb, yb = self.data.first()
        out = None
        try:
            with torch.no_grad():
                args, kwargs = call_args(head(xb, 2))
                params = {**self.fixed, **self.unflatten(self.theta)}
                out, note = as_output(functional_call(self.model, params, args, kwargs))
                self.loss_fn(out, yb[:2])
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = ""
            if out is not None and out.dim() == 2 and yb.dim() == 2:  # one row per sequence
                hint = (f"; the model gives one row of scores per sequence {tuple(out.shape)} "
                        f"and the targets are per token {tuple(yb[:2].shape)}: a classification "
                        "head needs a labels (or label) column of one class per row")
            raise InputError(
                f"the model does not run on this data with loss {self.loss_fn.name!r}: "
                f"{msg.rstrip('.') if hint else msg}{hint}"
            ) from None
        if note:
            self.notes.append(note)


ProgressFn = Callable[[int, "int | None"], None]
