"""A folder written by ``accelerate``'s ``Accelerator.save_state``, as a checkpoint.

It holds the first model's weights (``model.safetensors``, or ``pytorch_model.bin`` when saved
without safetensors) and its optimizer's ``torch.optim`` state dict (``optimizer.bin``), beside
``scheduler.bin`` and ``random_states_0.pkl`` (a plain pickle, never opened). The weights and the
optimizer state are read as the single files are, ``optimizer.bin`` with ``weights_only=True``;
the model comes from ``model`` (the folder does not say which), as for a plain state dict.
"""

from __future__ import annotations

import hashlib
import os

from landscape.loading.optimizer import load_optimizer_file

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
OPTIMIZER = "optimizer.bin"
FORMAT = "accelerate"


def is_folder(path: str) -> bool:
    """Whether ``path`` looks like ``save_state``'s output: weights beside ``optimizer.bin``
    or ``random_states_0.pkl``, and no ``config.json`` (that would be a Hugging Face folder)."""
    marks = (OPTIMIZER, "random_states_0.pkl")
    return (any(os.path.isfile(os.path.join(path, w)) for w in WEIGHTS)
            and any(os.path.isfile(os.path.join(path, m)) for m in marks)
            and not os.path.isfile(os.path.join(path, "config.json")))


def read_folder(path: str, trust: bool = False):  # noqa: ANN201 - a Checkpoint (no cycle)
    """The folder's weights, optimizer state and a digest of both as a Checkpoint."""
    from landscape.loading.checkpoints import file_sha256, load_checkpoint

    weights = next(os.path.join(path, w) for w in WEIGHTS if os.path.isfile(os.path.join(path, w)))
    ckpt = load_checkpoint(weights, trust=trust)
    digest = hashlib.sha256(f"{os.path.basename(weights)} {ckpt.sha256}\n".encode())
    optimizer = os.path.join(path, OPTIMIZER)
    sd, note = load_optimizer_file(optimizer)
    if sd is not None:
        ckpt.optimizer = sd
        digest.update(f"{OPTIMIZER} {file_sha256(optimizer)}\n".encode())
    ckpt.path, ckpt.format, ckpt.sha256 = path, FORMAT, digest.hexdigest()
    ckpt.metadata = {**ckpt.metadata, "notes": [note]} if note else ckpt.metadata
    return ckpt  # (load_checkpoint refused weights without tensors)
