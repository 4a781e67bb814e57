"""landscape: measure the geometry of a PyTorch checkpoint's loss.

    import landscape as ls
    problem = ls.open("ckpt.pt")      # or ls.Problem(model, loader, loss="cross-entropy")
    print(ls.spectrum(problem, top_k=3).eigenvalues, ls.trace(problem).estimate)

The names below are imported on first use, so ``import landscape`` (and ``landscape --help``)
does not pay for torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "open": "landscape.session",
    "with_data": "landscape.session",
    "weights_like": "landscape.session",
    "Problem": "landscape.problem",
    "Loss": "landscape.losses",
    "FunctionLoss": "landscape.losses",
    "CrossEntropy": "landscape.losses",
    "MSE": "landscape.losses",
    "CausalLM": "landscape.losses",
    "make_operator": "landscape.curvature",
    "inspect": "landscape.analyses.inspect",
    "InspectResult": "landscape.analyses.inspect",
    "spectrum": "landscape.analyses.spectrum",
    "SpectrumResult": "landscape.analyses.spectrum",
    "trace": "landscape.analyses.trace",
    "TraceAnalysis": "landscape.analyses.trace",
    "sharpness": "landscape.analyses.sharpness",
    "SharpnessResult": "landscape.analyses.sharpness",
    "ghost": "landscape.analyses.ghost",
    "GhostResult": "landscape.analyses.ghost",
    "lmc": "landscape.analyses.lmc",
    "LMCResult": "landscape.analyses.lmc",
    "track": "landscape.analyses.track",
    "TrackResult": "landscape.analyses.track",
    "write_result": "landscape.results",
    "read_result": "landscape.results",
    "InputError": "landscape.errors",
    "NumericalError": "landscape.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
