"""SGD and AdamW from torch. Parameter groups follow common practice: no weight decay on biases and normalisation
weights (1-D tensors). Every pytorch-optimizer optimizer is in ``library.py``, the axis' catch-all module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...engine.errors import check
from ...engine.registry import register
from ..base import OptimMethod


def param_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed (≥2-D weights) and not decayed (biases, norm weights)."""
    decay = [p for n, p in named_params if p.ndim >= 2]
    no_decay = [p for n, p in named_params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@dataclass(frozen=True)
class SGDConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")


@register("optim", "sgd", SGDConfig, "torch SGD with (Nesterov) momentum")
class SGD(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        return torch.optim.SGD(param_groups(named_params, c.weight_decay), lr=c.lr, momentum=c.momentum,
                               nesterov=c.nesterov and c.momentum > 0)


@dataclass(frozen=True)
class AdamWConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        check(self.eps > 0, "eps", self.eps, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")


@register("optim", "adamw", AdamWConfig, "torch AdamW (decoupled weight decay)",
          paper="Decoupled Weight Decay Regularization (arXiv 1711.05101)")
class AdamW(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        return torch.optim.AdamW(param_groups(named_params, c.weight_decay), lr=c.lr, betas=c.betas, eps=c.eps)
