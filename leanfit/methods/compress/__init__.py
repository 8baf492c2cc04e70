"""Compression axis: pruning, low-rank, quantization (weight sharing is a task option: ``share_layers``). Every public module here is a plug-in,
found by the registry's discovery (no list to keep)."""
