"""Optimizers axis: torch's SGD/AdamW plus every optimizer of pytorch-optimizer by name."""
from . import standard  # noqa: F401  (modules register on import)
