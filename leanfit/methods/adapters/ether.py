"""ETHER / ETHER+ — "ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane Reflections" (Bini et al.,
arXiv 2405.20271).

Equations (paper §3): ETHER multiplies the frozen weight by a Householder reflection,
    W' = H W,   H = I − 2 û ûᵀ,  û = u/‖u‖,   u ∈ R^d trained,
block-diagonal with ``n_blocks`` blocks (one u-block per block), so d parameters per layer. H is a reflection,
never the identity, so ETHER does NOT start at the pre-trained function (the paper's point: bounded distance
‖H − I‖ = 2). ETHER+ relaxes it to H⁺ = I − û ûᵀ + v̂ v̂ᵀ applied on both sides,
    W' = H⁺_L W H⁺_R,   (2d + 2k parameters per layer),
with v initialised equal to u so H⁺ = I at init. Both are mergeable: W' is an ordinary weight.
(nn.Linear stores W as [d_out, d_in]; "left" acts on the output dimension.)

peft 0.21.2 has no ETHER tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear ourselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class EtherConfig:
    n_blocks: int = 1
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.n_blocks, int) and self.n_blocks >= 1, "n_blocks", self.n_blocks, "an integer ≥ 1")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def _unit(u: torch.Tensor) -> torch.Tensor:
    return u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def reflect_left(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
    """H W with H block-diagonal; u, v [n, d/n]. ETHER (v None): H = I − 2ûûᵀ; ETHER+: H = I − ûûᵀ + v̂v̂ᵀ."""
    n, d, k = u.shape[0], W.shape[0], W.shape[1]
    Wb = W.reshape(n, d // n, k)
    uh = _unit(u)
    out = Wb - (2.0 if v is None else 1.0) * uh[:, :, None] * torch.einsum("nd,ndk->nk", uh, Wb)[:, None, :]
    if v is not None:
        vh = _unit(v)
        out = out + vh[:, :, None] * torch.einsum("nd,ndk->nk", vh, Wb)[:, None, :]
    return out.reshape(d, k)


def reflect_right(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """W H⁺ with H⁺ = I − ûûᵀ + v̂v̂ᵀ block-diagonal over the input dimension (H⁺ symmetric)."""
    return reflect_left(W.T, u, v).T


class EtherLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, n: int, plus: bool):
        super().__init__(base)
        d, k = base.out_features, base.in_features
        if d % n or (plus and k % n):
            raise ConfigError(f"ether: n_blocks={n} must divide the layer's widths ({d}, {k}). Fix: choose a divisor.")
        self.plus = plus
        self.u = nn.Parameter(torch.randn(n, d // n))
        if plus:
            self.v = nn.Parameter(self.u.detach().clone())
            self.u_r = nn.Parameter(torch.randn(n, k // n))
            self.v_r = nn.Parameter(self.u_r.detach().clone())

    def adapted_weight(self) -> torch.Tensor:
        W = self.base.weight
        if not self.plus:
            return reflect_left(W, self.u)
        return reflect_right(reflect_left(W, self.u, self.v), self.u_r, self.v_r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.adapted_weight(), self.base.bias)

    def merged_weight_bias(self):
        return self.adapted_weight(), self.base.bias


class _EtherBase(WrapperAdapter):
    mergeable = True
    plus = False

    def make_layer(self, name, linear, index):
        return EtherLinear(linear, self.config.n_blocks, self.plus)


@register("adapters", "ether", EtherConfig, "ETHER: Householder reflection H·W per layer (not identity at init)",
          paper="ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane Reflections (arXiv 2405.20271)")
class Ether(_EtherBase):
    identity_at_init = False

    def layer_params(self, linear: nn.Linear) -> int:
        return linear.out_features


@register("adapters", "ether_plus", EtherConfig, "ETHER+: two-sided relaxed reflections H⁺_L·W·H⁺_R",
          paper="ETHER: Efficient Finetuning of Large-Scale Models with Hyperplane Reflections (arXiv 2405.20271)")
class EtherPlus(_EtherBase):
    plus = True
    identity_at_init = True

    def layer_params(self, linear: nn.Linear) -> int:
        return 2 * (linear.out_features + linear.in_features)
