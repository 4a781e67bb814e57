"""Built-in models: a small MLP, a CIFAR-style ResNet and a tiny GPT.

Plain ``nn.Module`` subclasses whose construction is deterministic under
``torch.manual_seed``. Keyword arguments arrive from JSON, so sequences may be lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from landscape.compat import math_attention
from landscape.errors import InputError

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
}


def _ints(value: int | Sequence[int], name: str) -> tuple[int, ...]:
    values = (value,) if isinstance(value, int) else tuple(value)
    if not all(isinstance(v, int) and v > 0 for v in values):
        raise InputError(f"{name} must be positive integers, got {value!r}")
    return values


class MLP(nn.Module):
    """Fully connected network; inputs with more than two dimensions are flattened."""

    def __init__(
        self,
        in_dim: int = 64,
        hidden: int | Sequence[int] = (32,),
        out_dim: int = 10,
        activation: str = "tanh",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise InputError(
                f"mlp activation {activation!r} unknown; choose from {sorted(_ACTIVATIONS)}"
            )
        inner = _ints(hidden, "mlp hidden") if hidden else ()
        widths = (in_dim, *inner, out_dim)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i > 0:
                layers.append(_ACTIVATIONS[activation]())
            layers.append(nn.Linear(a, b, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1) if x.dim() > 2 else x)


def mlp(**kwargs) -> MLP:
    """``MLP(in_dim=64, hidden=(32,), out_dim=10, activation='tanh', bias=True)``."""
    return MLP(**kwargs)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise InputError(f"resnet norm {kind!r} unknown; choose 'batch' or 'none'")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and a residual add."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, stages of BasicBlocks (width doubles, stride 2 between
    stages), global average pooling and a linear classifier."""

    def __init__(
        self,
        num_classes: int = 10,
        width: int = 16,
        blocks: Sequence[int] = (1, 1, 1),
        in_channels: int = 3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        blocks = _ints(blocks, "resnet blocks")
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = _norm(norm, width)
        stages: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            stage = [BasicBlock(c_in, c_out, 2 if i > 0 else 1, norm)]
            stage += [BasicBlock(c_out, c_out, 1, norm) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn(self.stem(x))))
        return self.fc(out.mean(dim=(2, 3)))


def resnet(**kwargs) -> ResNet:
    """``ResNet(num_classes=10, width=16, blocks=(1, 1, 1), in_channels=3, norm='batch')``."""
    return ResNet(**kwargs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention via ``scaled_dot_product_attention``."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        if d_model % n_head:
            raise InputError(f"tinygpt d_model={d_model} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        # The math kernel is differentiable twice (Hessian-vector products); the fused CPU/CUDA
        # kernels are not.
        with math_attention():
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then MLP, each with a residual add."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Decoder-only transformer: token + learned position embeddings, pre-LN blocks, final
    LayerNorm and a linear head. Maps (B, T) token ids to (B, T, vocab) logits."""

    def __init__(
        self, vocab: int = 64, d_model: int = 32, n_layer: int = 2, n_head: int = 2,
        seq_len: int = 32,
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.seq_len:
            raise InputError(f"tinygpt got sequences of length {t} > seq_len={self.seq_len}")
        pos = torch.arange(t, device=idx.device)
        x = self.blocks(self.tok(idx) + self.pos(pos))
        return self.head(self.ln_f(x))


def tinygpt(**kwargs) -> TinyGPT:
    """``TinyGPT(vocab=64, d_model=32, n_layer=2, n_head=2, seq_len=32)``."""
    return TinyGPT(**kwargs)


ZOO: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "resnet": resnet, "tinygpt": tinygpt}
