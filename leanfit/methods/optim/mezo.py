"""MeZO: memory-efficient zeroth-order SGD (Malladi et al., "Fine-Tuning Language Models with Just Forward
Passes", arXiv 2305.17333), Algorithm 1.

With a random seed s per step and z ~ N(0, I_d) regenerated from s (never stored), SPSA (eq. 1) estimates

    projected_grad = (L(θ + εz; B) − L(θ − εz; B)) / (2ε)            (a scalar)
    θ ← θ − η · (projected_grad · z + λ θ)                            (ZO-SGD, eq. 2; decoupled-free wd as in Alg. 1)

The parameters are perturbed in place (θ+εz, then θ−εz, then back to θ), so memory is that of inference: no
gradients, no activations kept for backward, no optimizer state besides an integer step counter (z is re-drawn
from the seed). Two forward passes per step (``forward_passes_per_step = 2``). Our own implementation: no
maintained library provides MeZO for arbitrary PyTorch models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ...engine.errors import check
from ...engine.registry import register
from ..base import OptimMethod


def perturb_(params: Iterable[torch.Tensor], seed: int, scale: float) -> None:
    """θ ← θ + scale·z in place, z ~ N(0, I) drawn parameter by parameter from ``seed`` (same z every call)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for p in params:
        z = torch.randn(p.shape, generator=gen, dtype=p.dtype, device="cpu").to(p.device)
        p.data.add_(z, alpha=scale)


def direction(params: Iterable[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """The z that ``perturb_`` uses for ``seed`` (for tests and analysis; MeZO itself never materialises it)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype, device="cpu").to(p.device) for p in params]


@torch.no_grad()
def spsa_projected_grad(params: list[torch.Tensor], loss_fn: Callable[[], torch.Tensor], eps: float,
                        seed: int) -> tuple[float, float, float]:
    """Two-point SPSA along the seeded z, perturbing in place and restoring θ (up to float rounding).

    Returns (projected_grad, loss(θ+εz), loss(θ−εz))."""
    perturb_(params, seed, eps)
    lp = float(loss_fn())
    perturb_(params, seed, -2 * eps)
    lm = float(loss_fn())
    perturb_(params, seed, eps)
    return (lp - lm) / (2 * eps), lp, lm


@dataclass(frozen=True)
class MeZOConfig:
    lr: float = 1e-6
    eps: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", self.lr, "> 0 (paper: 1e-7..1e-5 for LMs)")
        check(isinstance(self.eps, (int, float)) and self.eps > 0, "eps", self.eps, "> 0 (paper: 1e-3)")
        check(isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0, "weight_decay",
              self.weight_decay, "≥ 0")
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer ≥ 0")


class MeZOOptimizer(torch.optim.Optimizer):
    """ZO-SGD; ``step(closure)`` needs a closure returning the mini-batch loss (no backward)."""

    forward_passes_per_step = 2

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, weight_decay: float = 0.0, seed: int = 0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))
        # the step counter and base seed live in the first group so state_dict() resumes exactly
        self.param_groups[0].setdefault("zo_step", 0)
        self.param_groups[0].setdefault("zo_seed", seed)
        self.last_projected_grad = 0.0

    def state_bytes(self) -> int:
        return 0  # z is regenerated from an integer seed: MeZO keeps no tensors between steps

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        if closure is None:
            raise RuntimeError("MeZO needs step(closure) with a closure returning the loss (forward only).")
        g0 = self.param_groups[0]
        seed = int(g0["zo_seed"]) * 1_000_003 + int(g0["zo_step"])
        params = [p for g in self.param_groups for p in g["params"]]
        eps = g0["eps"]
        pg, lp, lm = spsa_projected_grad(params, closure, eps, seed)
        self.last_projected_grad = pg
        gen = torch.Generator(device="cpu").manual_seed(seed)
        for g in self.param_groups:  # θ ← θ − η(pg·z + λθ), z regenerated in the same order
            for p in g["params"]:
                z = torch.randn(p.shape, generator=gen, dtype=p.dtype, device="cpu").to(p.device)
                if g["weight_decay"]:
                    p.data.mul_(1 - g["lr"] * g["weight_decay"])
                p.data.add_(z, alpha=-g["lr"] * pg)
        g0["zo_step"] = int(g0["zo_step"]) + 1
        return torch.tensor((lp + lm) / 2)


@register("optim", "mezo", MeZOConfig, "zeroth-order SGD with in-place seeded perturbations (2 forwards/step)",
          paper="Fine-Tuning Language Models with Just Forward Passes (arXiv 2305.17333)")
class MeZO(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        no_decay = [p for _, p in named_params if p.ndim < 2]
        decay = [p for _, p in named_params if p.ndim >= 2]
        groups = [g for g in ({"params": decay, "weight_decay": c.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        return MeZOOptimizer(groups, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay, seed=c.seed)
