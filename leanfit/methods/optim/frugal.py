"""FRUGAL (Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable
Training", arXiv 2411.07837), Algorithm 1 with a random row ("RandK-rows") projection.

The gradient of each matrix W ∈ R^{m×n} is split by a projection P onto a subspace and its complement:
g = P(g) + (g − P(g)). Here P keeps a random subset S of ⌈ρ·m⌉ rows (re-drawn every T steps; the Adam state is
reset when S changes, as in the paper). Then

    state-full (AdamW) on S:   m ← β₁m + (1−β₁)g_S,  v ← β₂v + (1−β₂)g_S²,  W_S ← W_S − η · m̂/(√v̂ + ε)
    state-free (signSGD) else: W_{¬S} ← W_{¬S} − η_free · sign(g_{¬S})

so Adam state is ρ·(2mn) floats instead of 2mn. 1-D parameters (biases, norms) and — as in the paper — the
classifier head are kept fully state-full. Decoupled weight decay η·λ·W on all ≥2-D weights. Our own
implementation (no maintained library provides FRUGAL); only the row projection is implemented (the paper also
has SVD, random-Gaussian and blockwise projections).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...engine.errors import check
from ...engine.registry import register
from ..base import OptimMethod


def frugal_update_(p: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor | None, exp_avg: torch.Tensor,
                   exp_avg_sq: torch.Tensor, step: int, lr: float, lr_free: float, betas: tuple[float, float],
                   eps: float) -> None:
    """One FRUGAL update of ``p`` in place. ``rows`` = state-full row ids (None: whole tensor state-full);
    ``exp_avg``/``exp_avg_sq`` have the shape of ``grad[rows]``; ``step`` counts from 1 since the last reset."""
    b1, b2 = betas
    g_s = grad if rows is None else grad[rows]
    exp_avg.mul_(b1).add_(g_s, alpha=1 - b1)
    exp_avg_sq.mul_(b2).addcmul_(g_s, g_s, value=1 - b2)
    upd = (exp_avg / (1 - b1 ** step)) / ((exp_avg_sq / (1 - b2 ** step)).sqrt() + eps)
    if rows is None:
        p.add_(upd, alpha=-lr)
        return
    free = grad.sign()
    free[rows] = 0
    p.add_(free, alpha=-lr_free)
    p.index_add_(0, rows, upd, alpha=-lr)


@dataclass(frozen=True)
class FrugalConfig:
    lr: float = 1e-3
    lr_free: float | None = None  # signSGD step; None = lr
    density: float = 0.25  # ρ: fraction of rows with Adam state
    update_gap: int = 100  # T: steps between re-drawing the subspace
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", self.lr, "> 0")
        check(self.lr_free is None or (isinstance(self.lr_free, (int, float)) and self.lr_free >= 0), "lr_free",
              self.lr_free, "≥ 0 or null (= lr)")
        check(isinstance(self.density, (int, float)) and 0 < self.density <= 1, "density", self.density,
              "in (0, 1]", "Fix: e.g. density: 0.25 (paper ρ=0.25)")
        check(isinstance(self.update_gap, int) and self.update_gap >= 1, "update_gap", self.update_gap, "an integer ≥ 1")
        object.__setattr__(self, "betas", tuple(self.betas))
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        check(self.eps > 0, "eps", self.eps, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")


class FrugalOptimizer(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, lr_free=None, density=0.25, update_gap=100, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, seed=0):
        super().__init__(params, dict(lr=lr, lr_free=lr if lr_free is None else lr_free, density=density,
                                      update_gap=update_gap, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      seed=seed, projected=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, g in enumerate(self.param_groups):
            for pi, p in enumerate(g["params"]):
                if p.grad is None:
                    continue
                st = self.state[p]
                st["step"] = st.get("step", torch.tensor(0.0)) + 1
                t = int(st["step"].item())
                proj = g["projected"] and p.ndim >= 2
                if proj and (t - 1) % g["update_gap"] == 0:  # new subspace; reset the Adam state
                    m = p.shape[0]
                    k = max(1, math.ceil(g["density"] * m))
                    gen = torch.Generator().manual_seed(g["seed"] * 7919 + gi * 1009 + pi * 101 + t)
                    st["rows"] = torch.randperm(m, generator=gen)[:k].sort().values.to(p.device)
                    st["exp_avg"] = torch.zeros((k, *p.shape[1:]), dtype=p.dtype, device=p.device)
                    st["exp_avg_sq"] = torch.zeros_like(st["exp_avg"])
                elif "exp_avg" not in st:
                    st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                local = (t - 1) % g["update_gap"] + 1 if proj else t
                if g["weight_decay"] and p.ndim >= 2:
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                rows = st["rows"].long() if proj else None  # load_state_dict casts state to the param dtype
                frugal_update_(p, p.grad, rows, st["exp_avg"], st["exp_avg_sq"],
                               local, g["lr"], g["lr_free"], g["betas"], g["eps"])
        return loss


@register("optim", "frugal", FrugalConfig, "AdamW in a random row subspace + state-free signSGD on the rest",
          paper="FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training "
                "(arXiv 2411.07837)")
class Frugal(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        head = [p for n, p in named_params if task is not None and task.is_head(n)]
        hid = {id(p) for p in head}
        rest = [p for _, p in named_params if id(p) not in hid]
        groups = [{"params": rest}] + ([{"params": head, "projected": False}] if head else [])
        return FrugalOptimizer(groups, lr=c.lr, lr_free=c.lr_free, density=c.density, update_gap=c.update_gap,
                               betas=c.betas, eps=c.eps, weight_decay=c.weight_decay, seed=c.seed)
