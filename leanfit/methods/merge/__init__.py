"""Merging axis: combine fine-tuned models."""
from . import arithmetic, rebasin  # noqa: F401  (registers the methods)
