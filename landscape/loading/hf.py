"""A Hugging Face folder (``save_pretrained``) as a checkpoint, read offline and safely.

A folder is one when it holds ``config.json`` and weights: ``model.safetensors``, sharded
safetensors (``model.safetensors.index.json``), or ``pytorch_model.bin`` (sharded or not, read
with ``torch.load(weights_only=True)``). :func:`read_folder` reads the weights without
``transformers``; :func:`build` makes the model from the config with ``transformers``' Auto
classes (``landscape[hf]``), never touching the hub (``local_files_only``), runs no code of the
folder's own unless ``trust`` (``--trust-checkpoint``), and loads the weights with
:func:`~landscape.loading.state_dicts.load_into` (tied keys such as ``lm_head.weight`` filled).

Attention is built ``eager``: SDPA's flash and memory-efficient kernels have no double backward,
which every Hessian-vector product needs, and eager attention (softmax(QKᵀ/√d + mask) V written
out) runs on every device and under ``vmap``/``jvp``. Weights stored in bf16/fp16 are analysed
in the Problem's dtype (float32 by default). The default loss follows the head named in
``config.json``'s ``architectures`` (:data:`HEADS`); an explicit loss overrides it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import torch
from torch import Tensor, nn

from landscape.errors import InputError
from landscape.loading import hf_trainer as trainer
from landscape.loading.checkpoints import Checkpoint, file_sha256
from landscape.loading.imports import one_line
from landscape.loading.state_dicts import load_into

FORMAT = "huggingface"
INSTALL = 'pip install "landscape[hf]"'
TRUST_HINT = "pass --trust-checkpoint if you trust it"
# (suffix of the architecture's class name, Auto class, default loss); first match wins
HEADS = (
    ("ForCausalLM", "AutoModelForCausalLM", "causal-lm"),
    ("LMHeadModel", "AutoModelForCausalLM", "causal-lm"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification", "cross-entropy"),
    ("ForTokenClassification", "AutoModelForTokenClassification", "cross-entropy"),
    ("ForMaskedLM", "AutoModelForMaskedLM", "cross-entropy"),
)
WEIGHTS = ("model.safetensors.index.json", "model.safetensors",
           "pytorch_model.bin.index.json", "pytorch_model.bin")


def is_folder(path: str) -> bool:
    """Whether ``path`` is a directory holding ``config.json``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def head_of(config: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(architecture, Auto class, default loss) for a ``config.json`` dict; None where unknown."""
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    for suffix, auto, loss in HEADS:
        if arch.endswith(suffix):
            return arch, auto, loss
    return arch, None, None


def _weight_files(path: str) -> tuple[str, list[str]]:
    """(kind, files relative to ``path``): the first of :data:`WEIGHTS` present."""
    for name in WEIGHTS:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        if not name.endswith(".index.json"):
            return name.rsplit(".", 1)[-1], [name]
        try:
            with open(full) as handle:
                weight_map = json.load(handle)["weight_map"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InputError(f"{full}: not a shard index ({one_line(exc)})") from exc
        return name.split(".")[1], sorted(set(weight_map.values()))
    raise InputError(f"{path}: config.json but no weights ({', '.join(WEIGHTS)})")


def _read_shard(full: str, kind: str) -> dict[str, Tensor]:
    if not os.path.isfile(full):
        raise InputError(f"{full}: a weight shard named by the index is missing")
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            return load_file(full, device="cpu")
        sd = torch.load(full, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise InputError(f"{full}: reading safetensors needs the 'safetensors' package") from exc
    except Exception as exc:  # both libraries raise many types for corrupt files
        raise InputError(f"{full}: cannot read weights ({one_line(exc)})") from exc
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise InputError(f"{full}: does not hold a name -> tensor dict")
    return sd


def read_folder(path: str) -> Checkpoint:
    """The folder's weights (every shard) as a :class:`Checkpoint` of format ``huggingface``.

    ``sha256`` digests the lines ``"<file> <sha256 of file>"`` of ``config.json``, the weight
    files and a Trainer's ``optimizer.pt`` in sorted order; ``metadata`` holds the config and a
    Trainer's ``global_step``/``epoch``; ``optimizer`` its state (``loading/hf_trainer.py``);
    ``spec`` the head's default loss."""
    try:
        with open(os.path.join(path, "config.json")) as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}/config.json is not readable JSON ({one_line(exc)})") from exc
    if not isinstance(config, dict):
        raise InputError(f"{path}/config.json does not hold a JSON object")
    kind, files = _weight_files(path)
    sd: dict[str, Tensor] = {}
    for name in files:
        sd.update(_read_shard(os.path.join(path, name), kind))
    if not sd:
        raise InputError(f"{path}: the weight files hold no tensors")
    optimizer, unread = trainer.optimizer_state(path)  # a Trainer's checkpoint-N/ folder
    hashed = [*files, *([trainer.OPTIMIZER] if optimizer is not None else [])]
    digest = hashlib.sha256()
    for name in sorted(["config.json", *hashed]):
        digest.update(f"{name} {file_sha256(os.path.join(path, name))}\n".encode())
    arch, _, loss = head_of(config)
    spec: dict[str, Any] = {"model": f"hf:{arch or config.get('model_type', 'AutoModel')}"}
    if loss:
        spec["loss"] = loss
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in sd.values()
                     if v.is_floating_point()})
    metadata = {"config": config, "weights": files, "stored_dtype": ",".join(dtypes),
                **trainer.training_step(path), "notes": [unread] if unread else []}
    return Checkpoint(path, FORMAT, digest.hexdigest(), sd, spec=spec, optimizer=optimizer,
                      metadata=metadata)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError(
            f"a Hugging Face folder needs the 'transformers' package: {INSTALL}"
        ) from None
    return transformers


def _auto_class(transformers: Any, config: Any, auto: str | None) -> Any:
    """The Auto class for the head: from the architecture's name, else from ``auto_map``."""
    if auto is None:
        names = list(getattr(config, "auto_map", None) or {})
        auto = next((n for n in names if n.startswith("AutoModelFor")), "AutoModel")
    return getattr(transformers, auto)


def _refuse_own_code(transformers: Any, ckpt: Checkpoint, trust: bool) -> None:
    """Without ``trust``, refuse a folder whose config names code of its own (``auto_map``) for a
    model type ``transformers`` does not define: building it would import and run that code."""
    config = ckpt.metadata.get("config", {})
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if trust or not config.get("auto_map") or config.get("model_type") in CONFIG_MAPPING_NAMES:
        return
    raise InputError(f"{ckpt.path}: its model ({config.get('model_type')!r}) is Python code in "
                     f"the folder (auto_map); loading it runs that code: {TRUST_HINT}")


def build(ckpt: Checkpoint, trust: bool = False, notes: list[str] | None = None,
          overrides: dict[str, Any] | None = None) -> nn.Module:
    """The model of a Hugging Face folder with its weights loaded, in float32, eager attention;
    ``overrides`` (``model_kwargs``) replace config.json's values, as ``from_pretrained`` does.

    Raises ``InputError`` without ``transformers`` (naming the install line), for a folder whose
    model is its own code without ``trust``, and for weights that do not fit the config."""
    notes = [] if notes is None else notes
    transformers = _transformers()
    path = ckpt.path
    _refuse_own_code(transformers, ckpt, trust)
    try:
        config = transformers.AutoConfig.from_pretrained(
            path, local_files_only=True, trust_remote_code=bool(trust), **(overrides or {})
        )
        arch, auto, _ = head_of(ckpt.metadata.get("config", {}))
        model = _auto_class(transformers, config, auto).from_config(
            config, trust_remote_code=bool(trust), attn_implementation="eager"
        )
    except (ValueError, OSError, KeyError, AttributeError, ImportError) as exc:
        text = one_line(exc)
        hint = f"; its model is code in the folder: {TRUST_HINT}" if (
            "trust_remote_code" in text and not trust) else ""
        raise InputError(f"{path}: cannot build the model from config.json ({text}){hint}") from exc
    model = model.to(torch.float32)
    notes.extend(load_into(model, fit_state(model, ckpt.state_dict, notes)))
    stored = ckpt.metadata.get("stored_dtype", "")
    if stored and stored != "float32":
        notes.append(f"weights stored in {stored}: analysed in the problem's dtype (--dtype)")
    notes.append("attention runs eager (SDPA's flash/efficient kernels have no double backward)")
    if auto is None:
        notes.append(f"no default loss for the head {arch or '(none named)'}: built as "
                     f"{type(model).__name__}; pass `loss`")
    return model


def fit_state(model: nn.Module, sd: dict[str, Tensor],
              notes: list[str] | None = None) -> dict[str, Tensor]:
    """``sd`` as ``from_pretrained`` would read it into ``model``: a base model's keys put under
    the head's prefix, and keys the class marks as unused dropped. A no-op for other modules.

    Args:
        model: the module the state is for (a ``transformers`` model, or any module).
        sd: the state dict as stored.
        notes: where to say which keys were dropped.

    Returns:
        The state dict to hand to :func:`~landscape.loading.state_dicts.load_into`."""
    return _drop_ignored(model, _with_base_prefix(model, sd), [] if notes is None else notes)


def _drop_ignored(model: nn.Module, sd: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    """``sd`` without the keys the model class lists as safe to ignore (old causal-mask buffers,
    ``_keys_to_ignore_on_load_unexpected``) that the model does not have."""
    patterns = getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []
    own = set(model.state_dict())
    drop = [k for k in sd if k not in own and any(re.search(p, k) for p in patterns)]
    if drop:
        notes.append(f"ignored {len(drop)} key(s) the model class marks as unused, e.g. {drop[0]}")
    return {k: v for k, v in sd.items() if k not in drop}


def _with_base_prefix(model: nn.Module, sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keys of a base-model file (``h.0.attn...``) under the head model's base prefix
    (``transformer.h.0.attn...``) when none of them carries it."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    own = list(model.state_dict())
    if not prefix or any(k.startswith(prefix + ".") for k in sd):
        return sd
    if not any(k.startswith(prefix + ".") for k in own):
        return sd
    return {(f"{prefix}.{k}" if f"{prefix}.{k}" in own else k): v for k, v in sd.items()}
