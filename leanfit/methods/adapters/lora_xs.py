"""LoRA-XS — "LoRA-XS: Low-Rank Adaptation with Extremely Small Number of Parameters" (Bałazy et al., arXiv
2405.17604).

Equation (paper §3): with the truncated SVD W ≈ U_r Σ_r V_rᵀ of the frozen weight W ∈ R^{d×k},
    h = W x + s · (U_r Σ_r) R (V_rᵀ) x,        R ∈ R^{r×r} the only trainable matrix,
so each adapted layer trains r² parameters, independent of d and k. R = 0 at init here (exact identity; the paper
initialises R with small Gaussian values — set ``init_std`` to do so). U_r Σ_r and V_rᵀ are recomputed from W on
``apply`` and kept as non-persistent buffers, so a saved adapter holds only the r×r matrices.

peft 0.21.2 has no LoRA-XS tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class LoraXSConfig:
    r: int = 16
    scale: float = 1.0
    init_std: float = 0.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "an integer ≥ 1")
        check(self.scale > 0, "scale", self.scale, "> 0")
        check(self.init_std >= 0, "init_std", self.init_std, "≥ 0 (0 = exact identity at init)")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def svd_factors(weight: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_r Σ_r [d, r], V_rᵀ [r, k]) of W [d, k] — the frozen LoRA-XS factors."""
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    return (u[:, :r] * s[:r]).to(weight.dtype), vh[:r].to(weight.dtype)


def lora_xs_delta(us: torch.Tensor, R: torch.Tensor, vt: torch.Tensor, scale: float) -> torch.Tensor:
    """ΔW = s · (U_r Σ_r) R V_rᵀ  → [d, k]."""
    return scale * us @ R @ vt


class LoraXSLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, r: int, scale: float, init_std: float):
        super().__init__(base)
        r = min(r, base.in_features, base.out_features)
        us, vt = svd_factors(base.weight, r)
        self.register_buffer("us", us, persistent=False)  # [d, r]
        self.register_buffer("vt", vt, persistent=False)  # [r, k]
        self.R = nn.Parameter(torch.randn(r, r) * init_std if init_std > 0 else torch.zeros(r, r))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [..., k] -> [..., d]
        return self.base(x) + self.scale * ((x @ self.vt.T) @ self.R.T) @ self.us.T

    def merged_weight_bias(self):
        return self.base.weight + lora_xs_delta(self.us, self.R, self.vt, self.scale), self.base.bias


@register("adapters", "lora_xs", LoraXSConfig, "LoRA-XS: frozen SVD factors of W, train only an r×r matrix",
          paper="LoRA-XS: Low-Rank Adaptation with Extremely Small Number of Parameters (arXiv 2405.17604)")
class LoraXS(WrapperAdapter):
    mergeable = True

    @property
    def identity_at_init(self) -> bool:
        return self.config.init_std == 0

    def make_layer(self, name, linear, index):
        c = self.config
        return LoraXSLinear(linear, c.r, c.scale, c.init_std)

    def layer_params(self, linear: nn.Linear) -> int:
        r = min(self.config.r, linear.in_features, linear.out_features)
        return r * r
