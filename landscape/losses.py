"""Loss objects: a batch's mean over its real targets, their count, and what the operators ask.

A whole-set loss is L(θ) = Σ_b sum_b / Σ_b count_b, so a loss gives per batch its ``count`` (the
samples for classification and regression, the real target tokens for a language model) and its
mean ``__call__`` = sum_b / count_b; ``Problem`` weights batch b by count_b / Σ count, and padding
(targets −100) never dilutes the mean, whatever the batching.

- ``cross-entropy``: −log softmax(z)[y] over every target position, leading dims flattened
  ((B, C) with (B,), or (B, T, V) with (B, T)); targets −100 are ignored;
- ``mse``: the mean of (z − y)² over the output elements, averaged over samples;
- ``causal-lm``: next-token cross-entropy, logits[:, t] predicting labels[:, t+1] (shift by one),
  labels −100 ignored, mean over the real targets of the whole set;
- a user function ``(output, target) -> mean loss`` through :class:`FunctionLoss`.

Each loss says whether it is a classification (accuracy is then the share of argmax hits) and how
to draw targets from the model's predictive for the Monte-Carlo Fisher (Martens 2014, §9).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError

IGNORE = -100  # the target value that marks padding (PyTorch's and Hugging Face's convention)
LossFn = Callable[[Tensor, Tensor], Tensor]


class Loss:
    """A loss over batches: ``loss(output, target)`` is the batch mean over ``count(target)``."""

    name = "loss"
    is_classification = False
    can_sample = False  # whether ``sample_targets`` gives the model's predictive (the Fisher)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def count(self, target: Tensor) -> int:
        """How many terms the batch mean averages over: by default its samples."""
        return int(target.shape[0])

    def correct(self, output: Tensor, target: Tensor) -> int:
        """Argmax hits among the counted targets (classification losses only)."""
        hit = (output.argmax(-1) == target) & (target != IGNORE)
        return int(hit.sum())

    def sample_targets(self, output: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
        """Targets drawn from the model's predictive at ``output`` (on the CPU ``gen``)."""
        raise InputError(f"loss {self.name!r} cannot sample targets for the Fisher")

    def __repr__(self) -> str:
        return f"<loss {self.name}>"


class CrossEntropy(Loss):
    """Softmax cross-entropy over every position of the targets; −100 marks padding."""

    name = "cross-entropy"
    is_classification = True
    can_sample = True

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def count(self, target: Tensor) -> int:
        return int((target != IGNORE).sum())

    def sample_targets(self, output: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
        z = output.detach()
        p = torch.softmax(z.double(), -1).reshape(-1, z.shape[-1]).cpu()
        t = torch.multinomial(p, 1, generator=gen).reshape(z.shape[:-1]).to(z.device)
        return torch.where(target == IGNORE, target, t)


class MSE(Loss):
    """Mean of (output − target)² over all elements: the per-sample mean, averaged."""

    name = "mse"
    can_sample = True

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        # written out: F.mse_loss's backward builds ZeroTensors that forward-over-reverse cannot use
        return ((output - target.reshape(output.shape)) ** 2).mean()

    def sample_targets(self, output: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
        # mse = ||z − y||² / D is a Gaussian's negative log-likelihood with variance D/2
        z = output.detach()
        scale = (z[0].numel() / 2) ** 0.5
        return (z.cpu() + scale * torch.randn(z.shape, generator=gen, dtype=z.dtype)).to(z.device)


class CausalLM(CrossEntropy):
    """Next-token cross-entropy: logits (B, T, V) at t predict labels (B, T) at t + 1."""

    name = "causal-lm"

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        _every_position(output, target)
        return super().__call__(output[:, :-1], target[:, 1:])

    def count(self, target: Tensor) -> int:
        return super().count(target[:, 1:])

    def correct(self, output: Tensor, target: Tensor) -> int:
        return super().correct(output[:, :-1], target[:, 1:])

    def sample_targets(self, output: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
        drawn = super().sample_targets(output[:, :-1], target[:, 1:], gen)
        return torch.cat([target[:, :1], drawn], dim=1)


def _every_position(output: Tensor, target: Tensor) -> None:
    """causal-lm needs logits (B, T, V) for labels (B, T): say so where a model gives fewer."""
    if output.dim() == 3 and tuple(output.shape[:2]) == tuple(target.shape[:2]):
        return
    why = ""
    if output.dim() == 3 and output.shape[1] == 1 and target.dim() == 2 and target.shape[1] > 1:
        why = ("; it gave the last position alone, as nanoGPT's GPT.forward(idx, targets=None) "
               "does: let `model` name a subclass whose forward(idx) returns "
               "super().forward(idx, idx)[0] (see the README)")
    raise InputError(f"causal-lm needs logits (B, T, V) at every position of the labels "
                     f"{tuple(target.shape)}, and the model gave {tuple(output.shape)}{why}")


class FunctionLoss(Loss):
    """A user's ``fn(output, target) -> mean loss over the batch's samples``.

    With ``classification=True`` it also gets accuracy (argmax hits) and a Fisher whose targets
    are drawn from softmax(output), as for cross-entropy.
    """

    def __init__(self, fn: LossFn, name: str | None = None, classification: bool = False) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "custom")
        self.is_classification = classification
        self.can_sample = classification

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return self.fn(output, target)

    def sample_targets(self, output: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
        if not self.is_classification:
            return super().sample_targets(output, target, gen)
        return CrossEntropy.sample_targets(self, output, target, gen)  # type: ignore[arg-type]


LOSSES: dict[str, Callable[[], Loss]] = {
    "cross-entropy": CrossEntropy,
    "mse": MSE,
    "causal-lm": CausalLM,
}


def labels_are_inputs(inputs: object, target: Tensor) -> bool:
    """Whether integer targets (B, T) are the input ids themselves (ignored positions aside):
    token data whose only sensible loss is the next token's (causal-lm)."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else inputs
    if not isinstance(ids, Tensor) or torch.is_floating_point(target) or target.dim() != 2:
        return False
    if ids.shape != target.shape or torch.is_floating_point(ids):
        return False
    return bool(((target == ids.to(target.device)) | (target == IGNORE)).all())


def resolve_loss(loss: str | Loss | LossFn | None, target: Tensor, inputs: object = None
                 ) -> Loss:
    """A Loss from a name (None: mse for float targets; for integer ones causal-lm where they
    are the ``inputs``' token ids, cross-entropy otherwise), a Loss, a function
    ``(output, target) -> mean loss``, or a ``pkg.module:function`` SPEC."""
    if isinstance(loss, Loss):
        return loss
    if callable(loss):
        return FunctionLoss(loss)
    if loss is None:
        loss = "mse" if torch.is_floating_point(target) else (
            "causal-lm" if labels_are_inputs(inputs, target) else "cross-entropy")
    if loss in LOSSES:
        made = LOSSES[loss]()
        if made.is_classification and torch.is_floating_point(target):
            raise InputError(f"`loss` {loss!r} needs integer class targets; got float targets")
        return made
    if isinstance(loss, str) and ":" in loss:
        from .loading.imports import import_object

        fn = import_object(loss)
        if isinstance(fn, Loss):
            return fn
        if isinstance(fn, type) and issubclass(fn, Loss):
            return fn()
        if not callable(fn):
            raise InputError(f"`loss` {loss!r} is not a function (output, target) -> loss")
        return FunctionLoss(fn, name=loss)
    names = ", ".join(LOSSES)
    raise InputError(f"unknown `loss` {loss!r}: use one of {names}, or pkg.module:function")
