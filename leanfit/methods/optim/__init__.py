"""Optimizers axis: torch's SGD/AdamW, every optimizer of pytorch-optimizer by name, and our MeZO, FRUGAL, SANIA."""
from . import frugal, mezo, sania, standard  # noqa: F401  (modules register on import; ours before the library)
