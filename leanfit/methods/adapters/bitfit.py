"""BitFit — "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models"
(Ben Zaken et al., arXiv 2106.10199).

Equation: every weight stays frozen and only the bias terms b of the network train (linear layers, LayerNorm
shifts, ...; paper §2), i.e. θ_trainable = {b}. Nothing is added, so the model is unchanged at init and "merging"
is a no-op. Optional ``bias_patterns`` restricts training to biases whose name contains one of the patterns
(the paper's query/FFN-intermediate subset).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...engine.errors import ConfigError
from ...engine.registry import register
from ...engine.task import is_head
from ..base import Adapter, mark_head_trainable
from ._layers import head_param_count


@dataclass(frozen=True)
class BitFitConfig:
    bias_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_patterns", tuple(self.bias_patterns))


def bias_names(model: nn.Module, head=(), patterns=()) -> list[str]:
    """Names of the backbone's bias parameters (optionally only those containing one of ``patterns``)."""
    return [n for n, _ in model.named_parameters()
            if n.endswith("bias") and not is_head(n, head) and (not patterns or any(p in n for p in patterns))]


@register("adapters", "bitfit", BitFitConfig, "BitFit: only bias terms (and the head) train",
          paper="BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models "
                "(arXiv 2106.10199)")
class BitFit(Adapter):
    mergeable = True
    identity_at_init = True

    def apply(self, model: nn.Module, task) -> nn.Module:
        names = set(bias_names(model, task.head, self.config.bias_patterns))
        if not names:
            raise ConfigError(f"bitfit found no bias parameter (bias_patterns={list(self.config.bias_patterns)}). "
                              f"Fix: use a model with biases or widen bias_patterns.")
        for n, p in model.named_parameters():
            p.requires_grad_(n in names)
        mark_head_trainable(model, task.head)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        return model  # the trained biases are the model's own tensors

    def param_formula(self, model: nn.Module, task) -> int:
        params = dict(model.named_parameters())
        return sum(params[n].numel() for n in bias_names(model, task.head, self.config.bias_patterns)) + \
            head_param_count(model, task)
