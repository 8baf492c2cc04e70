"""Baselines every adapter is compared against: full fine-tuning and head-only (linear probing)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...registry import register
from ..base import Adapter, mark_head_trainable


@dataclass(frozen=True)
class FullConfig:
    pass


@register("adapters", "full", FullConfig, "full fine-tuning: every parameter trains")
class Full(Adapter):
    def apply(self, model: nn.Module, task) -> nn.Module:
        model.requires_grad_(True)
        return model


@dataclass(frozen=True)
class HeadOnlyConfig:
    pass


@register("adapters", "head_only", HeadOnlyConfig, "linear probing: backbone frozen, only the task head trains")
class HeadOnly(Adapter):
    def apply(self, model: nn.Module, task) -> nn.Module:
        model.requires_grad_(False)
        mark_head_trainable(model, task.head)
        return model
