"""Test-wide settings: one intra-op thread (the models here are tiny; thread hand-offs cost more
than they give, and much more on a loaded machine)."""

import torch

torch.set_num_threads(1)
