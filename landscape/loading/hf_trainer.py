"""What a Hugging Face ``Trainer`` checkpoint folder (``checkpoint-N/``) holds beside the model.

``optimizer.pt`` is the ``torch.optim`` state dict, its groups in the Trainer's order (decayed
parameters, then biases and norms: ``optimizer_order``'s 'hf' recipe), read like every other
optimizer state (``optimizer.read_optimizer``), as AdamW where torch < 2.6 left out the
``decoupled_weight_decay`` flag (every torch Adam the Trainer builds is AdamW).
``trainer_state.json`` gives ``global_step`` and ``epoch``, by which ``track`` orders a run's
folders. ``scheduler.pt``, ``rng_state.pth`` and ``training_args.bin`` (a pickle) are not
needed: the state's groups already hold the learning rate the scheduler set for the next step.
"""

from __future__ import annotations

import json
import os
from typing import Any

from landscape.loading.optimizer import load_optimizer_file

OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"


def optimizer_state(folder: str) -> tuple[dict | None, str | None]:
    """(the folder's ``optimizer.pt`` as a state dict, or None; a note where one is there but
    cannot be read safely: ``optimizer.load_optimizer_file``)."""
    sd, note = load_optimizer_file(os.path.join(folder, OPTIMIZER))
    for group in (sd or {}).get("param_groups", []):  # torch's Adam/AdamW groups (they alone
        if isinstance(group, dict) and "amsgrad" in group:  # hold amsgrad): the Trainer builds
            group.setdefault("decoupled_weight_decay", True)  # AdamW (torch < 2.6: no flag)
    return sd, note


def training_step(folder: str) -> dict[str, Any]:
    """``global_step`` and ``epoch`` from ``trainer_state.json`` (empty where it is absent or
    unreadable: the step is then the folder's place in natural name order)."""
    try:
        with open(os.path.join(folder, STATE)) as handle:
            state = json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(state, dict):
        return {}
    return {k: state[k] for k in ("global_step", "epoch")
            if isinstance(state.get(k), (int, float)) and not isinstance(state.get(k), bool)}
