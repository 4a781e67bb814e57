"""The library's option choices, spelled here so that ``--help`` needs no torch.

``tests/test_cli_startup.py`` checks each tuple against the library's own.
"""

from __future__ import annotations

CURVATURES = ("hessian", "ggn", "fisher", "ef")  # landscape.curvature.CURVATURES
WHICH = ("largest", "smallest", "both", "magnitude")  # landscape.linalg.lanczos.WHICH
SOLVERS = ("lanczos", "scipy", "cupy")  # landscape.linalg.eigsh.SOLVERS
METHODS = ("hutchinson", "hutchpp", "xtrace")  # landscape.analyses.trace.METHODS
NORMS = ("filter", "layer", "none")  # landscape.analyses.surface_directions.NORMS
IGNORES = ("biasbn", "none")  # landscape.analyses.surface_directions.IGNORES
GROUP_PRESETS = ("transformer", "gpt2", "llama")  # landscape.analyses.blockwise.PRESETS
METRICS = ("loss", "accuracy", "grad_norm", "lambda_max", "trace", "directional", "ghost",
           "eos_ratio")  # landscape.analyses.track.METRICS
