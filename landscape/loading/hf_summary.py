"""What ``inspect`` says of a Hugging Face folder: architecture, dtypes, parameters per block."""

from __future__ import annotations

import torch

from landscape.loading.checkpoints import Checkpoint
from landscape.loading.hf import head_of


def block_counts(names: list[str], numels: list[int]) -> list[tuple[str, int]]:
    """Parameters per transformer block: names cut after their first numeric component
    (``transformer.h.3``), else after their first two (``transformer.wte``), in order."""
    out: dict[str, int] = {}
    for name, n in zip(names, numels):
        parts = name.split(".")
        cut = next((i + 1 for i, p in enumerate(parts[:-1]) if p.isdigit()), min(2, len(parts) - 1))
        key = ".".join(parts[: max(cut, 1)])
        out[key] = out.get(key, 0) + n
    return list(out.items())


def describe(ckpt: Checkpoint, names: list[str], numels: list[int], dtype: torch.dtype
             ) -> list[str]:
    """Summary lines for ``inspect``: architecture, stored and analysed dtype, parameters per
    transformer block (of θ: ``names`` and ``numels`` as the Problem holds them)."""
    config = ckpt.metadata.get("config", {})
    arch, _, loss = head_of(config)
    shape = ", ".join(f"{k} {config[k]}" for k in ("n_layer", "num_hidden_layers", "n_embd",
                                                     "hidden_size", "vocab_size") if k in config)
    blocks = "  ".join(f"{name} {n}" for name, n in block_counts(names, numels))
    return [
        f"architecture {arch or '?'} ({config.get('model_type', '?')}; {shape})  default loss "
        f"{loss or 'none'}",
        f"dtype stored {ckpt.metadata.get('stored_dtype') or '?'}, analysed "
        f"{str(dtype).replace('torch.', '')}",
        f"params by block: {blocks}",
    ]
