"""Adapters axis: which parameters train and how (full, head-only, peft methods, our peft-compatible plug-ins). Every public module here is a plug-in,
found by the registry's discovery (no list to keep)."""
