"""Problem: the model as a pure function of one flat parameter vector, the data, the loss.

Everything downstream sees L(θ) = (1/N) Σ_b n_b · L_b(θ), the whole-data-set mean loss with each
batch weighted by its size n_b, whatever the batching. The flat-vector <-> parameter-dict mapping
lives here and nowhere else.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .compat import set_tf32
from .errors import InputError, NumericalError
from .losses import LossFn, resolve_loss


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
    """A model, its data cut into batches, and a loss, seen as functions of a flat θ.

    ``params`` (a regular expression) restricts θ to the matching ``requires_grad`` parameters;
    the others are held fixed. The model runs in eval mode unless ``train_mode`` (then norm layers
    use batch statistics and dropout is active). On CUDA, TF32 is switched off process-wide, or on
    with ``tf32`` (faster, products ~1e-3 off; see :func:`landscape.compat.set_tf32`).
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        loss: str | LossFn | None = None,
        batch_size: int = 256,
        params: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        train_mode: bool = False,
        tf32: bool = False,
    ) -> None:
        if len(x) == 0:
            raise InputError("the data set is empty: no samples to evaluate the loss on")
        if len(x) != len(y):
            raise InputError(f"data has {len(x)} inputs but {len(y)} targets")
        if batch_size < 1:
            raise InputError(f"--batch-size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.dtype = dtype
        if self.device.type == "cuda":
            set_tf32(tf32)
        self.train_mode = train_mode
        model = _strip_running_stats(model) if train_mode else model.eval()
        self.model = model.to(device=self.device, dtype=dtype)
        self.loss_name, self.loss_fn = resolve_loss(loss, y)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if params is not None:
            try:
                pattern = re.compile(params)
            except re.error as e:
                raise InputError(f"--params {params!r} is not a regular expression: {e}") from None
            named = [(n, p) for n, p in named if pattern.search(n)]
            if not named:
                raise InputError(f"--params {params!r} matches no trainable parameter")
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
        self.batches = [
            (self._cast(x[i : i + batch_size]), self._cast(y[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]
        self.n_samples = len(x)
        self.weights = [len(xb) / self.n_samples for xb, _ in self.batches]
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

    # -- evaluation -----------------------------------------------------------------------
    def _cast(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        return x.to(self.dtype) if x.is_floating_point() else x

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """The model's output on inputs x with the selected parameters taken from θ."""
        return functional_call(self.model, {**self.fixed, **self.unflatten(theta)}, (x,))

    def batch_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The mean loss over one batch."""
        return self.loss_fn(self.forward(theta, x), y)

    def iter_batches(self) -> Iterator[tuple[float, Tensor, Tensor]]:
        """(weight n_b/N, x_b, y_b) for every batch; the weights sum to one."""
        for w, (xb, yb) in zip(self.weights, self.batches):
            yield w, xb, yb

    def _theta(self, theta: Tensor | None) -> Tensor:
        return self.theta if theta is None else theta.to(self.theta)

    def loss(self, theta: Tensor | None = None) -> float:
        """The whole-data-set mean loss L(θ)."""
        return self.evaluate(theta)["loss"]

    def evaluate(self, theta: Tensor | None = None) -> dict[str, float | None]:
        """Whole-data-set mean loss and (for classification) accuracy at θ."""
        theta = self._theta(theta)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = 0
        with torch.no_grad():
            for w, xb, yb in self.iter_batches():
                out = self.forward(theta, xb)
                total += w * self.loss_fn(out, yb).double()
                if self.is_classification:
                    correct += int((out.argmax(-1) == yb).sum())
        loss = float(total)
        if not torch.isfinite(torch.tensor(loss)):
            raise NumericalError(f"the loss is not finite ({loss}) at these parameters")
        n_targets = self.n_samples * (self.batches[0][1][0].numel())
        acc = correct / n_targets if self.is_classification else None
        return {"loss": loss, "accuracy": acc}

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
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros_like(theta)
        leaf = theta.detach().requires_grad_(True)
        for w, xb, yb in self.iter_batches():
            with torch.enable_grad():  # plain autograd: cheaper than torch.func.grad here
                value = self.batch_loss(leaf, xb, yb)
                (g,) = torch.autograd.grad(value, leaf, allow_unused=True)
            if g is not None:
                grad.add_(g, alpha=w)
            total += w * value.detach().double()
        loss = float(total)
        if not torch.isfinite(total) or not torch.isfinite(grad).all():
            raise NumericalError(f"the loss or its gradient is not finite (loss {loss})")
        return loss, grad

    def per_sample_outputs(self, theta: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(output, target) per batch at θ, without gradients."""
        theta = self._theta(theta)
        with torch.no_grad():
            for xb, yb in self.batches:
                yield self.forward(theta, xb), yb

    @property
    def is_classification(self) -> bool:
        return self.loss_name == "cross-entropy"

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
        xb, yb = self.batches[0]
        try:
            with torch.no_grad():
                self.loss_fn(self.forward(self.theta, xb[:2]), yb[:2])
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(
                f"the model does not run on this data with loss {self.loss_name!r}: {msg}"
            ) from None


ProgressFn = Callable[[int, "int | None"], None]
