"""Data axis: sample selection, pruning and reweighting (selectors are Trainer callbacks)."""
from . import (el2n_grand, forgetting, imbalance, imblearn_samplers, momentum, random_subset,  # noqa: F401
               reference_loss, s2l)
