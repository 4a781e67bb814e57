"""A user's own model file, the example for ``--model data/tiny_model.py:make``.

Same layout as the zoo ``mlp`` (keys ``layers.0.*`` and ``layers.2.*``), so the weights of
``demo_a.pt`` load into it.
"""

from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, in_dim=64, hidden=32, out_dim=10):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(),
                                    nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.layers(x.flatten(1))


def make(**kw) -> nn.Module:
    """Build the model; ``hidden`` may be given as an int or a one-element list."""
    hidden = kw.pop("hidden", 32)
    kw.pop("activation", None)
    return TinyMLP(hidden=hidden[0] if isinstance(hidden, (list, tuple)) else hidden, **kw)
