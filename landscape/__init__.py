"""landscape: measure the geometry of a PyTorch checkpoint's loss."""

__version__ = "0.1.0"
