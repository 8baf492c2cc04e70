"""Compression axis: pruning, low-rank, quantization (weight sharing is a task option: ``share_layers``)."""
from . import block_influence, lowrank, magnitude, quant, structured  # noqa: F401  (register the methods)
