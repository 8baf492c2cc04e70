"""Compacter — "Compacter: Efficient Low-Rank Hypercomplex Adapter Layers" (Mahabadi et al., arXiv 2106.04647).

Equation (paper eqs. 3–5): a bottleneck adapter y' = y + U f(D y + b_D) + b_U whose projections are PHM layers
    W = Σ_{i=1..n} A_i ⊗ B_i,    A_i ∈ R^{n×n} shared by all adapter layers ("slow" weights),
    B_i = s_i t_iᵀ,  s_i ∈ R^{out/n}, t_i ∈ R^{in/n} per layer ("fast", rank one),
so one adapter (down d→m and up m→d) trains 2(d + m) + m + d numbers, plus n³ shared in total. The up
projection's s_i start at zero, so the adapter is the identity at init. Non-linear, so not mergeable.

peft 0.21.2 has no Compacter tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class CompacterConfig:
    bottleneck: int = 16
    n: int = 4
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.n, int) and self.n >= 1, "n", self.n, "an integer ≥ 1")
        check(isinstance(self.bottleneck, int) and self.bottleneck >= 1 and self.bottleneck % self.n == 0,
              "bottleneck", self.bottleneck, f"a positive multiple of n={self.n}")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def phm_weight(A: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """W = Σ_i A_i ⊗ (s_i t_iᵀ): A [n, n, n], s [n, out/n], t [n, in/n] → W [out, in]."""
    n, (po, pi) = A.shape[0], (s.shape[1], t.shape[1])
    return torch.einsum("iab,ic,id->acbd", A, s, t).reshape(n * po, n * pi)


class SharedSlow(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.A = nn.Parameter(torch.randn(n, n, n) / math.sqrt(n))


class PHM(nn.Module):
    def __init__(self, shared: SharedSlow, n: int, d_in: int, d_out: int, zero: bool):
        super().__init__()
        self.shared = shared
        self.s = nn.Parameter(torch.zeros(n, d_out // n) if zero else torch.randn(n, d_out // n) / math.sqrt(d_out))
        self.t = nn.Parameter(torch.randn(n, d_in // n) / math.sqrt(d_in))
        self.b = nn.Parameter(torch.zeros(d_out))

    def weight(self) -> torch.Tensor:
        return phm_weight(self.shared.A, self.s, self.t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight(), self.b)


class CompacterLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, shared: SharedSlow, n: int, m: int):
        super().__init__(base)
        d = base.out_features
        if d % n:
            raise ConfigError(f"compacter: layer width {d} is not divisible by n={n}. Fix: choose n dividing {d}.")
        self.down = PHM(shared, n, d, m, zero=False)
        self.up = PHM(shared, n, m, d, zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.up(nn.functional.gelu(self.down(y)))


@register("adapters", "compacter", CompacterConfig, "Compacter: PHM bottleneck adapters, shared Kronecker factors",
          paper="Compacter: Efficient Low-Rank Hypercomplex Adapter Layers (arXiv 2106.04647)")
class Compacter(WrapperAdapter):
    mergeable = False

    def apply(self, model, task):
        self._shared = SharedSlow(self.config.n)
        return super().apply(model, task)

    def make_layer(self, name, linear, index):
        return CompacterLinear(linear, self._shared, self.config.n, self.config.bottleneck)

    def layer_params(self, linear: nn.Linear) -> int:
        d, m = linear.out_features, self.config.bottleneck
        return 2 * (d + m) + m + d

    def shared_params(self, model, task) -> int:
        return self.config.n ** 3
