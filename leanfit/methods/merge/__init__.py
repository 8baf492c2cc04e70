"""Merging axis: combine fine-tuned models."""
