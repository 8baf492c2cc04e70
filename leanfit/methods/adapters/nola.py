"""NOLA — "NOLA: Compressing LoRA using Linear Combination of Random Basis" (Koohpayegani et al., arXiv 2310.02556).

Equation (paper eq. 2): the LoRA factors are linear combinations of frozen random bases,
    A = Σ_{i=1..k} α_i A_i,   B = Σ_{j=1..l} β_j B_j,   ΔW = (s / r) · B A,
with A_i ∈ R^{r×k_in}, B_j ∈ R^{d×r} drawn from a pseudo-random generator; only α ∈ R^k and β ∈ R^l train, so each
layer trains k + l numbers. The bases are regenerated from ``seed`` (+ the layer's index) and kept as
non-persistent buffers: a saved adapter holds the coefficients and the seed (in the config), never the bases.
β = 0 at init (ΔW = 0, as LoRA's B = 0); α ~ U(−1/√k, 1/√k).

peft 0.21.2 has no NOLA tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
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
class NolaConfig:
    r: int = 8
    num_basis_a: int = 64
    num_basis_b: int = 64
    alpha: float = 16.0
    seed: int = 0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "an integer ≥ 1")
        check(isinstance(self.num_basis_a, int) and self.num_basis_a >= 1, "num_basis_a", self.num_basis_a, "≥ 1")
        check(isinstance(self.num_basis_b, int) and self.num_basis_b >= 1, "num_basis_b", self.num_basis_b, "≥ 1")
        check(self.alpha > 0, "alpha", self.alpha, "> 0")
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer ≥ 0")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def nola_bases(seed: int, index: int, r: int, d: int, k_in: int, n_a: int, n_b: int):
    """Frozen bases (A_i [n_a, r, k_in], B_j [n_b, d, r]) for layer ``index``, from a seeded generator."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    a = torch.randn(n_a, r, k_in, generator=g) / math.sqrt(k_in)
    b = torch.randn(n_b, d, r, generator=g) / math.sqrt(r)
    return a, b


def nola_delta(alpha: torch.Tensor, a_basis: torch.Tensor, beta: torch.Tensor, b_basis: torch.Tensor,
               scale: float) -> torch.Tensor:
    """ΔW = scale · (Σ β_j B_j)(Σ α_i A_i)  → [d, k_in]."""
    A = torch.einsum("i,irk->rk", alpha, a_basis)
    B = torch.einsum("j,jdr->dr", beta, b_basis)
    return scale * B @ A


class NolaLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, c: NolaConfig, index: int):
        super().__init__(base)
        a, b = nola_bases(c.seed, index, c.r, base.out_features, base.in_features, c.num_basis_a, c.num_basis_b)
        self.register_buffer("a_basis", a, persistent=False)
        self.register_buffer("b_basis", b, persistent=False)
        bound = 1 / math.sqrt(c.num_basis_a)
        self.alpha = nn.Parameter(torch.empty(c.num_basis_a).uniform_(-bound, bound))
        self.beta = nn.Parameter(torch.zeros(c.num_basis_b))
        self.scale = c.alpha / c.r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        A = torch.einsum("i,irk->rk", self.alpha, self.a_basis)  # [r, k]
        B = torch.einsum("j,jdr->dr", self.beta, self.b_basis)  # [d, r]
        return self.base(x) + self.scale * (x @ A.T) @ B.T

    def merged_weight_bias(self):
        return self.base.weight + nola_delta(self.alpha, self.a_basis, self.beta, self.b_basis,
                                             self.scale), self.base.bias


@register("adapters", "nola", NolaConfig, "NOLA: LoRA factors as trained mixes of seeded random bases",
          paper="NOLA: Compressing LoRA using Linear Combination of Random Basis (arXiv 2310.02556)")
class Nola(WrapperAdapter):
    mergeable = True

    def make_layer(self, name, linear, index):
        return NolaLinear(linear, self.config, index)

    def layer_params(self, linear: nn.Linear) -> int:
        return self.config.num_basis_a + self.config.num_basis_b
