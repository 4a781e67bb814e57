"""The front door: a checkpoint opened as a Problem, and the checkpoints that go with it.

``open(ckpt)`` reads the checkpoint safely, builds its model (an argument beats the checkpoint's
own ``landscape`` entry; the checkpoint's ``model_kwargs`` go only with its own model spec),
loads the weights, opens the data (relative paths resolve next to the checkpoint first) and
returns the :class:`~landscape.problem.Problem`, whose ``origin`` records where it came from.
``weights_like`` loads a second checkpoint into the first one's architecture, ``with_data`` opens
the same model on other data.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed, memory
from .errors import InputError
from .loading import hf, token_stream
from .loading.checkpoints import Checkpoint, load_checkpoint, load_into
from .loading.data import load_data
from .loading.models import build_model
from .losses import Loss, LossFn
from .precision import autocast_model, resolve_model_dtype
from .problem import Problem

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Origin:
    """Where a Problem came from: its checkpoint, the specs used and how it was opened."""

    checkpoint: Checkpoint
    model_spec: str
    data_spec: str
    options: dict[str, Any]
    checkpoints: list[dict[str, str]] = field(default_factory=list)

    def read(self, path: str | os.PathLike | Checkpoint) -> Checkpoint:
        """Another checkpoint, read as safely as the first and recorded for provenance."""
        ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(
            os.fspath(path), trust=bool(self.options.get("trust"))
        )
        self.checkpoints.append(
            {"path": os.path.abspath(ckpt.path), "sha256": ckpt.sha256, "format": ckpt.format}
        )
        return ckpt

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.checkpoint.path))


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when it is there (``cuda:LOCAL_RANK`` under torchrun), else the CPU;
    anything else must exist here."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{distributed.local_rank()}" if distributed.world_size() > 1
                            else "cuda")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"`device` {name!r} is not a device: use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"`device` {name}: CUDA is not available on this machine")
    return device


def _dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if value not in DTYPES:
        raise InputError(f"`dtype` {value!r}: use one of {', '.join(DTYPES)}")
    return DTYPES[value]


def build(ckpt: Checkpoint, model: str | nn.Module | None = None,
          model_kwargs: dict[str, Any] | None = None, state_prefix: str | None = None,
          notes: list[str] | None = None, trust: bool = False) -> tuple[nn.Module, str]:
    """The model of ``ckpt`` with its weights loaded, and the spec it was built from.

    ``model`` (a spec or a module to load the weights into) beats the checkpoint's own spec;
    a pickled module is used as it is. ``state_prefix`` names the prefix of the model's keys in
    the checkpoint (found by itself otherwise); what loading noticed goes to ``notes``. A
    Hugging Face folder builds its own model (:func:`landscape.loading.hf.build`; ``trust``
    allows the folder's own code, ``model_kwargs`` override its config) unless another ``model``
    is given.
    """
    notes = [] if notes is None else notes
    notes.extend(ckpt.metadata.get("notes", []))  # what reading a folder's side files noticed
    if ckpt.format == hf.FORMAT and (model is None or model == ckpt.spec.get("model")):
        return hf.build(ckpt, trust, notes, overrides=model_kwargs), ckpt.spec["model"]
    if isinstance(model, nn.Module):
        notes.extend(load_into(model, ckpt.state_dict, prefix=state_prefix))
        return model, f"{type(model).__name__} (given)"
    spec = ckpt.spec
    model_spec = model or spec.get("model")
    if model_spec is None and ckpt.module is not None:
        return ckpt.module, f"pickled module ({type(ckpt.module).__name__})"
    if model_spec is None:
        raise InputError(f"{ckpt.path}: the checkpoint names no model: pass `model`")
    if model_kwargs is None and model_spec == spec.get("model"):
        model_kwargs = spec.get("model_kwargs")  # the checkpoint's kwargs belong to its own model
    from_args = model_kwargs is None and "model_args" in ckpt.metadata
    if from_args:
        model_kwargs = ckpt.metadata["model_args"]
        notes.append("the model is built with the checkpoint's model_args (as nanoGPT saves "
                     "them); `model_kwargs` overrides them")
    base_dir = os.path.dirname(os.path.abspath(ckpt.path))
    try:
        built = build_model(model_spec, model_kwargs, base_dir=base_dir)
    except InputError as e:
        if not from_args:
            raise
        raise InputError(f"{e} (the checkpoint's model_args; `model_kwargs` '{{}}' builds the "
                         "model without them)") from e
    notes.extend(load_into(built, ckpt.state_dict, prefix=state_prefix))
    return built, model_spec


def data_source(ckpt: Checkpoint | None, data: Any = None, data_kwargs: dict | None = None,
                max_samples: int | None = None, seed: int = 0) -> tuple[Any, str]:
    """What ``Problem`` reads for ``data`` (a spec, or a source of batches as it is) or, without
    it, for the checkpoint's own data spec; and the name to record."""
    spec = ckpt.spec if ckpt else {}
    if data is not None and not isinstance(data, str):
        return data, type(data).__name__
    data_spec = data or spec.get("data")
    if data_spec is None:
        raise InputError("no data: pass `data` (the checkpoint names none)")
    if data_kwargs is None and data_spec == spec.get("data"):
        data_kwargs = spec.get("data_kwargs")
    args = ckpt.metadata.get("model_args", {}) if ckpt else {}
    stream = isinstance(data_spec, str) and data_spec.lower().endswith(token_stream.SUFFIX)
    if stream and "block_size" in args:  # nanoGPT's train.bin, in rows of its model's context
        data_kwargs = {"block_size": args["block_size"], **(data_kwargs or {})}
    base = os.path.dirname(os.path.abspath(ckpt.path)) if ckpt else None
    loaded = load_data(data_spec, data_kwargs, max_samples=max_samples, seed=seed, base_dir=base)
    return loaded.source, data_spec


def open(
    checkpoint: str | os.PathLike | Checkpoint,
    model: str | nn.Module | None = None,
    data: Any = None,
    loss: str | Loss | LossFn | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    data_kwargs: dict[str, Any] | None = None,
    state_prefix: str | None = None,
    batch_size: int = 256,
    max_samples: int | None = None,
    params: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = torch.float32,
    train_mode: bool = False,
    trust: bool = False,
    seed: int = 0,
    tf32: bool = False,
    cache: bool | None = None,
    model_dtype: str | torch.dtype | None = None,
) -> Problem:
    """Open ``checkpoint`` as a Problem: its model with its weights, the data and the loss.

    Args:
        checkpoint: a checkpoint file (see :mod:`landscape.loading.checkpoints`) or a Hugging
            Face folder (see :mod:`landscape.loading.hf`; its head picks the default loss).
        model: a model spec (zoo name, ``pkg.module:factory``, ``file.py:factory``) or a module
            to load the weights into; None: the checkpoint's own ``landscape`` entry.
        data: a data spec (built-in name, file, factory spec) or any source of batches a Problem
            takes (tensors ``(x, y)``, a DataLoader, a Dataset, a list, a function); None: the
            checkpoint's own.
        loss: a loss name, a :class:`~landscape.losses.Loss` or a function; None: the
            checkpoint's own, else cross-entropy for integer targets and mse otherwise.
        state_prefix: the prefix of the model's keys in the checkpoint (``net.``); by default
            the prefix under which all of them are found.
        trust: allow checkpoint formats whose loading runs code (pickled modules, TorchScript).
        seed: seeds the built-in data sets.
        model_dtype: ``bf16``/``fp16`` runs the model's forward and backward passes under
            autocast, θ and the Krylov vectors staying in ``dtype`` (see
            :mod:`landscape.precision`); None or ``float32``: ``dtype`` throughout.
        The others go to :class:`~landscape.problem.Problem`.

    Returns:
        The Problem, with ``problem.origin`` (an :class:`Origin`) saying where it came from.
    """
    options = {k: v for k, v in locals().items() if k not in ("checkpoint", "model", "data")}
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(
        os.fspath(checkpoint), trust=trust
    )
    origin = Origin(ckpt, "", "", options)
    origin.read(ckpt)
    notes: list[str] = []
    module, origin.model_spec = build(ckpt, model, model_kwargs, state_prefix, notes, trust)
    if (autocast := resolve_model_dtype(model_dtype)) is not None:
        notes.append(autocast_model(module, autocast))
    source, origin.data_spec = data_source(ckpt, data, data_kwargs, max_samples, seed)
    problem = _problem(module, source, ckpt.spec.get("loss") if loss is None else loss, options)
    problem.notes[:0] = notes
    if (said := memory.check(problem)) is not None:  # before any product: refuse what won't fit
        problem.notes.append(said)
    problem.origin = origin
    return problem


def _problem(model: nn.Module, source: Any, loss: Any, o: dict[str, Any]) -> Problem:
    return Problem(
        model, source, loss=loss, batch_size=o["batch_size"], params=o["params"],
        device=resolve_device(o["device"]), dtype=_dtype(o["dtype"]), train_mode=o["train_mode"],
        tf32=o["tf32"], max_samples=o["max_samples"], cache=o["cache"],
    )


def with_data(problem: Problem, data: Any, data_kwargs: dict[str, Any] | None = None) -> Problem:
    """The same model, loss and options as ``problem`` (opened by :func:`open`) on other data."""
    origin = _origin(problem)
    o = origin.options
    source, _ = data_source(origin.checkpoint, data, data_kwargs, o["max_samples"], o["seed"])
    return _problem(copy.deepcopy(problem.model), source, problem.loss_fn, o)


def weights_like(problem: Problem, checkpoint: str | os.PathLike | Checkpoint) -> dict[str, Tensor]:
    """``checkpoint``'s whole state (parameters and buffers) loaded into a fresh model of
    ``problem``'s architecture, so keys, prefixes and shapes are checked as for the first."""
    origin = _origin(problem)
    other = origin.read(checkpoint)
    spec = origin.model_spec if origin.checkpoint.module is None else None
    if spec is None or spec.endswith("(given)"):
        model = copy.deepcopy(problem.model)  # never overwrite the first model's own weights
    else:
        model, _ = build(origin.checkpoint, spec, origin.options["model_kwargs"],
                         trust=bool(origin.options["trust"]))
    try:
        load_into(model, hf.fit_state(model, other.state_dict),
                  prefix=origin.options["state_prefix"])
    except InputError as e:
        raise InputError(
            f"{other.path} does not fit the architecture of {origin.checkpoint.path}: {e}"
        ) from None
    return {k: v.detach() for k, v in model.state_dict().items()}


def _origin(problem: Problem) -> Origin:
    origin = getattr(problem, "origin", None)
    if origin is None:
        raise InputError("this Problem was not opened from a checkpoint (use landscape.open)")
    return origin
