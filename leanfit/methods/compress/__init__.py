"""Compression axis: pruning, low-rank, quantization, weight sharing."""
