"""Low-rank factorisation of Linear layers: truncated SVD with rank by energy, and LASER.

- ``svd``: Denton et al., "Exploiting Linear Structure Within Convolutional Networks for Efficient Evaluation"
  (1404.0736). W = U Σ Vᵀ (W: [out, in]); keep the smallest rank r with Σ_{i≤r} σ_i² / Σ_i σ_i² ≥ energy
  (Eckart–Young: W_r = U_r Σ_r V_rᵀ is the best rank-r approximation). The layer becomes
  ``up(down(x))`` with down = Σ_r^{1/2} V_rᵀ ([r, in]) and up = U_r Σ_r^{1/2} ([out, r]) plus the bias; a layer is
  only factorised when r·(in + out) < in·out (otherwise factoring adds parameters) unless ``force``.
- ``laser``: Sharma et al., "The Truth is in There: Improving Reasoning in Language Models with Layer-Selective
  Rank Reduction" (2312.13558). Replace ONE weight matrix by its rank-k approximation, k = ⌊ρ·min(in, out)⌋,
  choosing (layer ℓ, ρ) by accuracy on held-out data: here the first ``n_val`` rows of the task's validation split
  (never train, which the model has fitted, and never test, which is scored once).
  The chosen layer is stored factorised, so a small ρ also saves parameters.

Written by us: a plain torch.linalg.svd; no maintained library offers this as a module transform.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ..base import Compressor
from ._common import accuracy, require_task, set_module, target_layers


class LowRankLinear(nn.Module):
    """x ↦ up(down(x)): down [r, in] (no bias), up [out, r] (+ bias). ``rank`` is read from the tensor shape."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    @property
    def rank(self) -> int:
        return self.down.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def energy_rank(s: torch.Tensor, energy: float) -> int:
    """Smallest r with Σ_{i≤r} σ_i² ≥ energy · Σ σ_i² (s sorted descending)."""
    e = s.double() ** 2
    cum = torch.cumsum(e, 0) / e.sum().clamp_min(1e-300)
    return int(min(len(s), int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12)) + 1))


@torch.no_grad()
def factorize(linear: nn.Linear, rank: int) -> LowRankLinear:
    """Truncated SVD of one Linear layer (computed in float64, stored in the layer's dtype)."""
    w = linear.weight.detach().double()  # [out, in]
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    r = max(1, min(rank, len(s)))
    root = s[:r].sqrt()
    new = LowRankLinear(linear.in_features, linear.out_features, r, bias=linear.bias is not None)
    new.down.weight.copy_((root[:, None] * vh[:r]).to(linear.weight.dtype))  # [r, in]
    new.up.weight.copy_((u[:, :r] * root[None, :]).to(linear.weight.dtype))  # [out, r]
    if linear.bias is not None:
        new.up.bias.copy_(linear.bias.detach())
    return new.to(linear.weight.device)


def svd_compress(model: nn.Module, energy: float, head: tuple[str, ...] = (), force: bool = False) -> dict:
    """Factorise every (non-head) Linear whose energy rank saves parameters; returns ranks read from the tensors."""
    ranks = {}
    for name, lin in target_layers(model, head, kinds=(nn.Linear,)):
        s = torch.linalg.svdvals(lin.weight.detach().double())
        r = energy_rank(s, energy)
        if force or r * (lin.in_features + lin.out_features) < lin.in_features * lin.out_features:
            set_module(model, name, factorize(lin, r))
    for name, m in model.named_modules():
        if isinstance(m, LowRankLinear):
            ranks[name] = m.rank
    if not ranks:
        warnings.warn(f"compress.svd changed nothing: at energy={energy} no Linear layer's rank saves parameters. "
                      "Fix: lower energy (e.g. 0.5) or set force=true.", stacklevel=2)
    return {"ranks": ranks, "layers_factorized": len(ranks)}


@dataclass(frozen=True)
class SVDConfig:
    energy: float = 0.9
    force: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.energy, (int, float)) and 0 < self.energy <= 1, "energy", self.energy, "in (0, 1]",
              "Fix: the fraction of squared singular-value energy to keep, e.g. 0.9.")


@register("compress", "svd", SVDConfig, "truncated SVD of Linear layers, rank by singular-value energy",
          paper="Exploiting Linear Structure Within Convolutional Networks for Efficient Evaluation (1404.0736)",
          reports="rank")
class SVD(Compressor):
    def compress(self, model, task=None):
        return {"method": "svd", "energy": self.config.energy,
                **svd_compress(model, self.config.energy, task.head if task else (), self.config.force)}


def laser_search(model: nn.Module, task, rhos: tuple[float, ...], n_val: int, head: tuple[str, ...] = (),
                 tolerance: float = 0.0) -> dict:
    """Try every (layer, ρ) on ``n_val`` validation rows, in place. tolerance = 0: the paper's choice — the best accuracy if it
    is ≥ the unmodified model's (ties → smaller rank), else no change. tolerance > 0 (for compression): the
    smallest rank whose accuracy ≥ base − tolerance (ties → higher accuracy)."""
    base = accuracy(task, model, "validation", n_val)
    trials = []
    for name, lin in target_layers(model, head, kinds=(nn.Linear,)):
        for rho in rhos:
            k = max(1, int(rho * min(lin.in_features, lin.out_features)))
            set_module(model, name, factorize(lin, k))
            trials.append({"layer": name, "rho": rho, "rank": k, "accuracy": accuracy(task, model, "validation", n_val),
                           "saved_params": lin.weight.numel() - k * (lin.in_features + lin.out_features)})
            set_module(model, name, lin)
    ok = [t for t in trials if t["accuracy"] >= base - tolerance]
    if tolerance == 0:
        key = lambda t: (t["accuracy"], -t["rank"])  # noqa: E731
    else:
        key = lambda t: (t["saved_params"], t["accuracy"])  # noqa: E731
    best = max(ok, key=key) if ok else None
    if best is None:
        warnings.warn("compress.laser changed nothing: no (layer, rank) kept the held-out accuracy. "
                      "Fix: allow a small accuracy drop with tolerance (e.g. 0.01).", stacklevel=2)
    else:
        set_module(model, best["layer"], factorize(model.get_submodule(best["layer"]), best["rank"]))
    return {"best": best, "base_accuracy": base, "trials": trials}


@dataclass(frozen=True)
class LaserConfig:
    rhos: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5)
    n_val: int = 256  # rows of the validation split the search scores on
    tolerance: float = 0.0  # > 0: take the most compressive (layer, rank) within this accuracy drop
    layers: tuple[str, ...] = ()  # only layers whose name contains one of these (all non-head Linear if empty)

    def __post_init__(self) -> None:
        check(isinstance(self.rhos, (list, tuple)) and len(self.rhos) > 0
              and all(isinstance(r, (int, float)) and 0 < r < 1 for r in self.rhos), "rhos", self.rhos,
              "a non-empty list of fractions in (0, 1)", "Fix: e.g. rhos: [0.05, 0.1, 0.25].")
        check(isinstance(self.layers, (list, tuple)), "layers", self.layers, "a list of layer-name substrings")
        check(isinstance(self.n_val, int) and self.n_val >= 1, "n_val", self.n_val, "an integer >= 1")
        check(0 <= self.tolerance < 1, "tolerance", self.tolerance, "in [0, 1)")


@register("compress", "laser", LaserConfig, "rank-reduce the single best Linear layer (layer and rank searched)",
          paper="The Truth is in There: Improving Reasoning in Language Models with Layer-Selective Rank Reduction "
                "(2312.13558)", reports="rank")
class Laser(Compressor):
    def compress(self, model, task=None):
        task = require_task(task, "laser")
        c = self.config
        skip = tuple(n for n, _ in target_layers(model, task.head, kinds=(nn.Linear,))
                     if c.layers and not any(p in n for p in c.layers))
        rep = laser_search(model, task, tuple(c.rhos), c.n_val, task.head + skip, c.tolerance)
        ranks = {n: m.rank for n, m in model.named_modules() if isinstance(m, LowRankLinear)}
        return {"method": "laser", "ranks": ranks, **rep}
