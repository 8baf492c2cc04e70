"""ShareLoRA — "ShareLoRA: Parameter Efficient and Robust Large Language Model Fine-tuning via Shared Low-Rank
Adaptation" (Song et al., arXiv 2406.10785), the "share A" variant.

Equation: ΔW_ℓ = (α / r) · B_ℓ A with one A ∈ R^{r×k} shared by every targeted layer of input width k and a
per-layer B_ℓ ∈ R^{d×r} (zero at init, so the model is unchanged at init). Trainable parameters:
r·k per distinct input width + Σ_ℓ d_ℓ·r.

peft 0.21.2 has no ShareLoRA tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class ShareLoraConfig:
    r: int = 8
    alpha: float = 16.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "an integer ≥ 1")
        check(self.alpha > 0, "alpha", self.alpha, "> 0")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def share_lora_delta(B: torch.Tensor, A: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    return (alpha / r) * B @ A


class SharedA(nn.Module):
    def __init__(self, r: int, k: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(r, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))


class ShareLoraLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, shared: SharedA, r: int, alpha: float):
        super().__init__(base)
        self.shared_a = shared  # the same module object in every layer of this input width
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.r, self.alpha = r, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.alpha / self.r) * (x @ self.shared_a.weight.T) @ self.B.T

    def merged_weight_bias(self):
        return self.base.weight + share_lora_delta(self.B, self.shared_a.weight, self.alpha, self.r), self.base.bias


@register("adapters", "share_lora", ShareLoraConfig, "ShareLoRA: one LoRA A shared across layers, per-layer B",
          paper="ShareLoRA: Parameter Efficient and Robust LLM Fine-tuning via Shared Low-Rank Adaptation "
                "(arXiv 2406.10785)")
class ShareLora(WrapperAdapter):
    mergeable = True

    def apply(self, model, task):
        self._shared: dict[int, SharedA] = {}
        return super().apply(model, task)

    def make_layer(self, name, linear, index):
        c = self.config
        if linear.in_features not in self._shared:
            self._shared[linear.in_features] = SharedA(c.r, linear.in_features)
        return ShareLoraLinear(linear, self._shared[linear.in_features], c.r, c.alpha)

    def layer_params(self, linear: nn.Linear) -> int:
        return linear.out_features * self.config.r

    def shared_params(self, model, task) -> int:
        return sum(self.config.r * k for k in {lin.in_features for _, lin in self.target_layers(model, task)})
