"""Data axis: sample selection, pruning and reweighting (selectors are Trainer callbacks). Every public module here is a plug-in,
found by the registry's discovery (no list to keep)."""
