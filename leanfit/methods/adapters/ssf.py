"""SSF — "Scaling & Shifting Your Features: A New Baseline for Efficient Model Tuning" (Lian et al., arXiv
2210.08823).

Equation (paper eq. 3): after each targeted linear op, y' = γ ⊙ y + β with γ, β ∈ R^d trained (2d per layer).
Re-parameterisation (eq. 5): since y = W x + b, the adapter merges into the layer: W' = diag(γ) W, b' = γ ⊙ b + β.
Init: γ ~ N(1, σ²), β ~ N(0, σ²) (paper: σ small); ``init_std=0`` (default) gives γ = 1, β = 0, the identity.

peft 0.21.2 has no SSF tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class SsfConfig:
    init_std: float = 0.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(self.init_std >= 0, "init_std", self.init_std, "≥ 0 (0 = exact identity at init)")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def ssf_merge(weight: torch.Tensor, bias: torch.Tensor | None, gamma: torch.Tensor, beta: torch.Tensor):
    """W' = diag(γ) W,  b' = γ ⊙ b + β  (eq. 5)."""
    return gamma[:, None] * weight, (gamma * bias if bias is not None else 0) + beta


class SsfLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, init_std: float):
        super().__init__(base)
        d = base.out_features
        self.gamma = nn.Parameter(1 + init_std * torch.randn(d))
        self.beta = nn.Parameter(init_std * torch.randn(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.gamma + self.beta

    def merged_weight_bias(self):
        return ssf_merge(self.base.weight, self.base.bias, self.gamma, self.beta)


@register("adapters", "ssf", SsfConfig, "SSF: learned per-feature scale and shift after each targeted layer",
          paper="Scaling & Shifting Your Features: A New Baseline for Efficient Model Tuning (arXiv 2210.08823)")
class Ssf(WrapperAdapter):
    mergeable = True

    @property
    def identity_at_init(self) -> bool:
        return self.config.init_std == 0

    def make_layer(self, name, linear, index):
        return SsfLinear(linear, self.config.init_std)

    def layer_params(self, linear: nn.Linear) -> int:
        return 2 * linear.out_features
