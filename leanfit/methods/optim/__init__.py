"""Optimizers axis: torch's SGD/AdamW, every optimizer of pytorch-optimizer by name, and our MeZO, FRUGAL, SANIA. Every public module here is a plug-in,
found by the registry's discovery (no list to keep)."""
