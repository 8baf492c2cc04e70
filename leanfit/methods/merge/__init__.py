"""Merging axis: combine fine-tuned models."""
from . import arithmetic, pleas, rebasin  # noqa: F401  (registers the methods)
