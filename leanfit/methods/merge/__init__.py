"""Merging axis: combine fine-tuned models. Every public module here is a plug-in,
found by the registry's discovery (no list to keep)."""
