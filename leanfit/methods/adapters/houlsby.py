"""Houlsby bottleneck adapters — "Parameter-Efficient Transfer Learning for NLP" (Houlsby et al., arXiv
1902.00751).

Equation (paper Fig. 2): after a targeted projection y = W x + b, insert
    y' = y + W_up f(W_down y + b_down) + b_up,   W_down ∈ R^{m×d}, W_up ∈ R^{d×m}, m ≪ d,
i.e. 2md + m + d parameters per adapter; the paper also trains the LayerNorm parameters (``train_layernorm``).
The paper uses a near-identity init; we zero W_up and b_up so the adapter is exactly the identity at init.
Non-linear, so not mergeable. On BERT the paper's placement (after the attention output projection and after the
FFN output) is ``target_modules=["output.dense"]``.

peft 0.21.2 has no bottleneck-adapter tuner and cannot register new ones (see ``_layers``); we wrap nn.Linear.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ...engine.task import is_head
from ._layers import AdaptedLinear, WrapperAdapter


@dataclass(frozen=True)
class HoulsbyConfig:
    bottleneck: int = 16
    train_layernorm: bool = True
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.bottleneck, int) and self.bottleneck >= 1, "bottleneck", self.bottleneck, "≥ 1")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def bottleneck(y: torch.Tensor, w_down, b_down, w_up, b_up) -> torch.Tensor:
    """y + W_up gelu(W_down y + b_down) + b_up."""
    return y + torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(y, w_down, b_down)),
                                          w_up, b_up)


class HoulsbyLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, m: int):
        super().__init__(base)
        d = base.out_features
        self.down = nn.Linear(d, m)
        self.up = nn.Linear(m, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bottleneck(self.base(x), self.down.weight, self.down.bias, self.up.weight, self.up.bias)


def _layernorms(model: nn.Module, head) -> list[nn.Module]:
    return [m for n, m in model.named_modules() if isinstance(m, nn.LayerNorm) and not is_head(n, head)]


@register("adapters", "houlsby", HoulsbyConfig, "Houlsby bottleneck adapter after each targeted projection",
          paper="Parameter-Efficient Transfer Learning for NLP (arXiv 1902.00751)")
class Houlsby(WrapperAdapter):
    mergeable = False

    def apply(self, model, task):
        super().apply(model, task)
        if self.config.train_layernorm:
            for m in _layernorms(model, task.head):
                m.requires_grad_(True)
        return model

    def make_layer(self, name, linear, index):
        return HoulsbyLinear(linear, self.config.bottleneck)

    def layer_params(self, linear: nn.Linear) -> int:
        m, d = self.config.bottleneck, linear.out_features
        return 2 * m * d + m + d

    def shared_params(self, model, task) -> int:
        if not self.config.train_layernorm:
            return 0
        return sum(p.numel() for m in _layernorms(model, task.head) for p in m.parameters())
