"""The workloads every comparison runs on: one model, one data set, one loss, shared by all tools.

1. ``mlp``: a tanh MLP on a Gaussian mixture, small enough for the exact float64 Hessian;
2. ``resnet``: a CIFAR-style ResNet with BatchNorm (eval mode) on 512 synthetic images;
3. ``gpt``: a tiny causal transformer on random (Markov) tokens;
4. ``resnet18`` / ``gpt2``: ResNet-18-size and GPT-2-small-size models, CUDA only;
5. ``gpt2m``: a 1.9M-parameter transformer, at the realistic CPU size (``--size real``) only.

Every tool gets its own deep copy of the model (some of them put it in eval mode, zero its
gradients or move it), the same batches, and the same loss function ``criterion``. Sizes are
chosen per device so the full CPU suite fits its time budget (see ``SIZES``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from landscape.loading import data as landscape_data
from landscape.loading import zoo


class FlatCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy (mean) that accepts (B, C) or (B, T, V) logits with (B,) / (B, T) targets.

    An ``nn.Module`` with ``reduction='mean'``, as curvlinops asks for, and the same numbers as
    ``landscape.losses.cross_entropy``.
    """

    def forward(self, output: Tensor, target: Tensor) -> Tensor:  # noqa: D102
        return super().forward(output.reshape(-1, output.shape[-1]), target.reshape(-1))


@dataclass
class Workload:
    """A model, its data as equal-sized batches and a loss; ``exact`` when P is small enough
    for the dense float64 Hessian."""

    name: str
    description: str
    make_model: Callable[[], nn.Module]
    x: Tensor
    y: Tensor
    batch_size: int
    device: torch.device
    exact: bool = False
    criterion: nn.Module = field(default_factory=FlatCrossEntropy)
    _model: nn.Module | None = None

    def model(self) -> nn.Module:
        """A fresh deep copy of the model (float32, eval mode, on the workload's device)."""
        if self._model is None:
            torch.manual_seed(0)
            self._model = self.make_model().float().eval().to(self.device)
        return copy.deepcopy(self._model)

    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """The data cut into ``batch_size`` batches, on the workload's device."""
        xs = self.x.to(self.device).split(self.batch_size)
        ys = self.y.to(self.device).split(self.batch_size)
        return list(zip(xs, ys))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model().parameters() if p.requires_grad)

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])


# Per (workload, size) the model kwargs, the data kwargs and the batch size. "real" sizes are the
# ones issue 16 names for a CPU (a 1.8k-parameter MLP on 4,096 samples, a 174k-parameter ResNet
# on 512 32x32 images, GPTs of 466k and 1.9M parameters on 32 sequences of 64 tokens); "cpu"
# sizes are a SMOKE TEST (16 8x8 images, a one-layer transformer on 8 sequences: fixed overheads
# dominate, so they say little about the models users bring); "cuda" sizes are the ones issue 7
# names; ``--size cuda`` runs those on a CPU too.
SIZES: dict[str, dict[str, tuple[dict, dict, int]]] = {
    "mlp": {
        "real": ({"in_dim": 32, "hidden": (48,), "out_dim": 4}, {"n": 4096, "dim": 32}, 1024),
        "quick": ({"in_dim": 16, "hidden": (16,), "out_dim": 4}, {"n": 512, "dim": 16}, 512),
        "cpu": ({"in_dim": 16, "hidden": (16,), "out_dim": 4}, {"n": 512, "dim": 16}, 512),
        "cuda": ({"in_dim": 16, "hidden": (16,), "out_dim": 4}, {"n": 512, "dim": 16}, 512),
    },
    "resnet": {  # real: width 24, P = 174,274 on 512 CIFAR-size images
        "real": ({"width": 24, "blocks": (1, 1, 1)}, {"n": 512, "size": 32}, 128),
        "quick": ({"width": 4, "blocks": (1, 1, 1)}, {"n": 128, "size": 8}, 128),
        "cpu": ({"width": 4, "blocks": (1, 1, 1)}, {"n": 16, "size": 8}, 16),
        "cuda": ({"width": 16, "blocks": (1, 1, 1)}, {"n": 512, "size": 32}, 256),
    },
    "gpt": {  # real: P = 466,048, 32 sequences of 64 tokens
        "real": ({"vocab": 64, "d_model": 96, "n_layer": 4, "n_head": 4, "seq_len": 64},
                 {"n": 32, "seq_len": 64, "vocab": 64}, 16),
        "quick": ({"seq_len": 16, "d_model": 16, "n_layer": 1}, {"n": 16, "seq_len": 16}, 16),
        "cpu": ({"seq_len": 16, "d_model": 16, "n_layer": 1}, {"n": 8, "seq_len": 16}, 8),
        "cuda": ({"seq_len": 32}, {"n": 128, "seq_len": 32}, 64),
    },
    "gpt2m": {  # P = 1,890,688, 32 sequences of 64 tokens
        "real": ({"vocab": 256, "d_model": 192, "n_layer": 4, "n_head": 4, "seq_len": 64},
                 {"n": 32, "seq_len": 64, "vocab": 256}, 16),
    },
    "resnet18": {  # CIFAR ResNet-18 layout: width 64, two blocks per stage, four stages
        "cuda": ({"width": 64, "blocks": (2, 2, 2, 2)}, {"n": 512, "size": 32}, 128),
    },
    "gpt2": {  # GPT-2 small: 12 layers, 768 wide, 12 heads (vocab kept small: random tokens)
        "cuda": ({"vocab": 1024, "d_model": 768, "n_layer": 12, "n_head": 12, "seq_len": 128},
                 {"n": 32, "seq_len": 128, "vocab": 1024}, 8),
    },
}

FACTORIES: dict[str, tuple[Callable[..., nn.Module], str, str]] = {
    "mlp": (zoo.mlp, "gmm", "tanh MLP on a Gaussian mixture (exact float64 Hessian)"),
    "resnet": (zoo.resnet, "images", "CIFAR-style ResNet, BatchNorm in eval mode"),
    "gpt": (zoo.tinygpt, "tokens", "tiny causal transformer on random Markov tokens"),
    "gpt2m": (zoo.tinygpt, "tokens", "2M-parameter causal transformer on random Markov tokens"),
    "resnet18": (zoo.resnet, "images", "ResNet-18-size CIFAR ResNet (GPU only)"),
    "gpt2": (zoo.tinygpt, "tokens", "GPT-2-small-size transformer (GPU only)"),
}
BASE = ("mlp", "gpt", "resnet")
REAL_ONLY = ("gpt2m",)  # built only at the realistic CPU size (--size real)
GPU_ONLY = ("resnet18", "gpt2")


def build(name: str, device: str | torch.device = "cpu", quick: bool = False,
          size: str | None = None) -> Workload:
    """The workload ``name`` sized for ``device`` (or for CI with ``quick``, or ``size``)."""
    device = torch.device(device)
    size = size or ("quick" if quick else ("cuda" if device.type == "cuda" else "cpu"))
    if size not in SIZES[name]:
        raise ValueError(f"workload {name} has no {size!r} size (sizes: {', '.join(SIZES[name])})")
    model_kwargs, data_kwargs, batch_size = SIZES[name][size]
    factory, data_name, what = FACTORIES[name]
    if size == "cpu":
        what = f"SMOKE TEST size ({what})"
    ds = landscape_data.load_data(data_name, data_kwargs, seed=0)
    desc = f"{what}; model {model_kwargs}; data {data_name} {data_kwargs}; batch {batch_size}"
    return Workload(
        name=name, description=desc, make_model=lambda: factory(**model_kwargs),
        x=ds.x, y=ds.y, batch_size=batch_size, device=device, exact=(name == "mlp"),
    )


def build_all(device: str | torch.device = "cpu", quick: bool = False,
              only: list[str] | None = None, size: str | None = None
              ) -> tuple[list[Workload], list[str]]:
    """The workloads for ``device`` and notes on those skipped (GPU-only ones on a CPU);
    ``quick`` runs workload 1 only unless ``only`` names others."""
    device = torch.device(device)
    names = (["mlp"] if not only else list(BASE)) if quick else list(BASE) + list(GPU_ONLY)
    if size == "real" and not quick:
        names = list(BASE) + list(REAL_ONLY)
    if only:
        names = [n for n in names if n in only]
    out, notes = [], []
    for n in names:
        if n in GPU_ONLY and device.type != "cuda":
            notes.append(f"{n}: skipped on {device.type} ({FACTORIES[n][2]})")
            continue
        out.append(build(n, device, quick, size))
    return out, notes
