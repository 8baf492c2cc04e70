"""SANIA (Abdukhakimov et al., "SANIA: Polyak-type Optimization Framework Leads to Scale Invariant Stochastic
Algorithms", arXiv 2312.17369). The general update (eq. 6, with f* = 0 under interpolation) is a Polyak step
in the norm of a diagonal preconditioner B_t:

    w_{t+1} = w_t − η · f_i(w_t) / ‖∇f_i(w_t)‖²_{B_t⁻¹} · B_t⁻¹ ∇f_i(w_t),    ‖g‖²_{B⁻¹} = gᵀ B⁻¹ g

with B_t (the paper's "-SQR" choices, no square root, which makes the method invariant to feature scaling):
  - ``adagrad-sqr``: B_t = diag(Σ_{s≤t} g_s²)
  - ``adam-sqr``:    B_t = diag(v̂_t), v_t = β v_{t−1} + (1−β) g_t² (bias-corrected)
  - ``identity``:    B_t = I (the stochastic Polyak step, SPS)
η = 1 in the paper (a tuning-free method); ``lr`` scales it. ``eps`` guards the diagonal. Our own implementation.

It needs the loss value at each step, so it declares ``needs_closure``: ``step(closure)`` takes the standard
PyTorch closure (zero grads, forward, backward, return the loss), and the Trainer meters one forward+backward
per call, with gradients and activations in its memory account like any gradient optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.errors import check
from ...engine.registry import register
from ..base import OptimMethod

PRECONDITIONERS = ("adagrad-sqr", "adam-sqr", "identity")


def sania_step_size(loss: float, grads: list[torch.Tensor], diag: list[torch.Tensor] | None, eps: float) -> float:
    """γ = f / ‖g‖²_{B⁻¹}  (B = diag(diag) + eps, or I when ``diag`` is None)."""
    if diag is None:
        denom = sum(float((g * g).sum()) for g in grads)
    else:
        denom = sum(float((g * g / (b + eps)).sum()) for g, b in zip(grads, diag))
    return loss / denom if denom > 0 else 0.0


@dataclass(frozen=True)
class SaniaConfig:
    lr: float = 1.0
    preconditioner: str = "adam-sqr"
    beta: float = 0.999
    eps: float = 1e-8
    max_step: float = 1e3  # cap on γ (the Polyak step blows up as ‖g‖ → 0 at nonzero loss)

    def __post_init__(self) -> None:
        check(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", self.lr, "> 0 (paper: 1)")
        check(self.preconditioner in PRECONDITIONERS, "preconditioner", self.preconditioner,
              f"one of {PRECONDITIONERS}")
        check(isinstance(self.beta, (int, float)) and 0 <= self.beta < 1, "beta", self.beta, "in [0, 1)")
        check(isinstance(self.eps, (int, float)) and self.eps > 0, "eps", self.eps, "> 0")
        check(isinstance(self.max_step, (int, float)) and self.max_step > 0, "max_step", self.max_step, "> 0")


class SaniaOptimizer(torch.optim.Optimizer):
    needs_closure = True  # the Polyak step needs f_i(w_t): the Trainer passes its standard closure

    def __init__(self, params, lr=1.0, preconditioner="adam-sqr", beta=0.999, eps=1e-8, max_step=1e3):
        super().__init__(params, dict(lr=lr, preconditioner=preconditioner, beta=beta, eps=eps, max_step=max_step))

    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("SANIA needs step(closure): a closure that zeroes grads, computes the loss, calls "
                               "backward and returns the loss (Polyak step).")
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            for g in self.param_groups:
                ps = [p for p in g["params"] if p.grad is not None]
                grads = [p.grad for p in ps]
                diag = None
                if g["preconditioner"] != "identity":
                    diag = []
                    for p in ps:
                        st = self.state[p]
                        st["step"] = st.get("step", torch.tensor(0.0)) + 1
                        if "sq" not in st:
                            st["sq"] = torch.zeros_like(p)
                        if g["preconditioner"] == "adagrad-sqr":
                            st["sq"].addcmul_(p.grad, p.grad)
                            diag.append(st["sq"])
                        else:
                            st["sq"].mul_(g["beta"]).addcmul_(p.grad, p.grad, value=1 - g["beta"])
                            diag.append(st["sq"] / (1 - g["beta"] ** st["step"]))
                gamma = min(g["max_step"], sania_step_size(float(loss), grads, diag, g["eps"]))
                for i, p in enumerate(ps):
                    d = p.grad if diag is None else p.grad / (diag[i] + g["eps"])
                    p.add_(d, alpha=-g["lr"] * gamma)
        return loss.detach()


@register("optim", "sania", SaniaConfig, "Polyak step in a diagonal (AdaGrad/Adam-SQR) preconditioner norm",
          paper="SANIA: Polyak-type Optimization Framework Leads to Scale Invariant Stochastic Algorithms "
                "(arXiv 2312.17369)")
class Sania(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        return SaniaOptimizer([p for _, p in named_params], lr=c.lr, preconditioner=c.preconditioner, beta=c.beta,
                              eps=c.eps, max_step=c.max_step)
