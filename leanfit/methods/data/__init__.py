"""Data axis: sample selection, pruning and reweighting."""
