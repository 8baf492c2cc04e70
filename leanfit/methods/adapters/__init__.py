"""Adapters axis: which parameters train and how (full, head-only, peft methods, our peft-compatible plug-ins)."""
from . import baseline, peft_methods  # noqa: F401  (modules register on import)
