"""Baselines every adapter is compared against: full fine-tuning and head-only (linear probing)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...engine.registry import register
from ..base import Adapter, mark_head_trainable


@dataclass(frozen=True)
class FullConfig:
    pass


@register("adapters", "full", FullConfig, "full fine-tuning: every parameter trains")
class Full(Adapter):
    identity_at_init = True
    def apply(self, model: nn.Module, task) -> nn.Module:
        model.requires_grad_(True)
        return model

    def param_formula(self, model: nn.Module, task) -> int:
        return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class HeadOnlyConfig:
    pass


@register("adapters", "head_only", HeadOnlyConfig, "linear probing: backbone frozen, only the task head trains")
class HeadOnly(Adapter):
    identity_at_init = True
    def apply(self, model: nn.Module, task) -> nn.Module:
        model.requires_grad_(False)
        mark_head_trainable(model, task.head)
        return model

    def param_formula(self, model: nn.Module, task) -> int:
        from ._layers import head_param_count

        return head_param_count(model, task)
