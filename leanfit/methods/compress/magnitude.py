"""Unstructured magnitude pruning: one-shot (global or layer-wise) and gradual (GMP, cubic schedule).

- One-shot: Han et al., "Learning both Weights and Connections for Efficient Neural Networks" (1506.02626).
  Remove the k = round(s·N) weights of smallest |w|: mask_ij = 1[|w_ij| > τ] with τ the k-th smallest |w| over all
  target layers (``scope="global"``) or within each layer (``scope="layerwise"``, k_l = round(s·N_l)).
- Gradual: Zhu & Gupta, "To prune, or not to prune" (1710.01878), Eq. (1): at steps t = t0, t0+Δt, …, t0+nΔt
  the target sparsity is s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(nΔt))³; masks are recomputed from the current
  |w| at each of these steps and kept fixed in between (masked weights get no effective update).

Masks are applied with ``torch.nn.utils.prune.custom_from_mask`` (the optimizer keeps the same Parameter objects)
and made permanent with ``prune.remove`` at the end. The mask computation is ours (a sort, exact k), checked
against ``prune.global_unstructured`` / ``prune.l1_unstructured`` in the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from ...engine.errors import check
from ...engine.registry import register
from ..base import Compressor
from ._common import check_removed_fraction, target_layers, weight_sparsity

SCOPES = ("global", "layerwise")


def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float, scope: str = "global") -> dict[str, torch.Tensor]:
    """Boolean keep-masks removing exactly round(s·N) smallest-|w| entries (globally or per tensor)."""
    if scope == "layerwise":
        return {n: magnitude_masks({n: w}, sparsity, "global")[n] for n, w in weights.items()}
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])  # [N]
    k = int(round(sparsity * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    out, i = {}, 0
    for n, w in weights.items():
        out[n] = keep[i:i + w.numel()].view_as(w)
        i += w.numel()
    return out


def gmp_sparsity(step: int, final: float, initial: float = 0.0, start: int = 0, n_updates: int = 10,
                 every: int = 1) -> float:
    """Zhu & Gupta Eq. (1): s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, held constant outside [t0, t0+nΔt]."""
    if step < start:
        return 0.0
    progress = min(1.0, (step - start) / max(n_updates * every, 1))
    return final + (initial - final) * (1.0 - progress) ** 3


def _masked(m: nn.Module) -> bool:
    return "weight_mask" in m._buffers  # prune.is_pruned(m) also looks at submodules


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    mods = dict(model.named_modules())
    for n, mask in masks.items():
        m = mods[n]
        if _masked(m):
            prune.remove(m, "weight")
        prune.custom_from_mask(m, "weight", mask.to(m.weight.device))


def make_permanent(model: nn.Module) -> None:
    for m in model.modules():
        if _masked(m):
            prune.remove(m, "weight")


def magnitude_prune(model: nn.Module, sparsity: float, scope: str = "global", head: tuple[str, ...] = (),
                    include_head: bool = False) -> dict:
    """Prune in place (permanently); returns the sparsity counted from the tensors."""
    layers = target_layers(model, head, include_head=include_head)
    masks = magnitude_masks({n: m.weight for n, m in layers}, sparsity, scope)
    apply_masks(model, masks)
    make_permanent(model)
    return weight_sparsity(layers)


@dataclass(frozen=True)
class MagnitudeConfig:
    sparsity: float = 0.5
    scope: str = "global"
    include_head: bool = False

    def __post_init__(self) -> None:
        check_removed_fraction("sparsity", self.sparsity)
        check(self.scope in SCOPES, "scope", self.scope, f"one of {SCOPES}")


@register("compress", "magnitude", MagnitudeConfig, "unstructured magnitude pruning after training (global or per layer)",
          paper="Learning both Weights and Connections for Efficient Neural Networks (1506.02626)", reports="sparsity")
class Magnitude(Compressor):
    def compress(self, model, task=None):
        c = self.config
        rep = magnitude_prune(model, c.sparsity, c.scope, task.head if task else (), c.include_head)
        return {"method": "magnitude", "target_sparsity": c.sparsity, **rep}


@dataclass(frozen=True)
class GMPConfig:
    final_sparsity: float = 0.8
    initial_sparsity: float = 0.0
    start_fraction: float = 0.1  # t0 as a fraction of the planned steps
    end_fraction: float = 0.7  # t0 + nΔt as a fraction of the planned steps
    every: int = 10  # Δt: steps between mask updates
    scope: str = "global"
    include_head: bool = False

    def __post_init__(self) -> None:
        check_removed_fraction("final_sparsity", self.final_sparsity)
        check_removed_fraction("initial_sparsity", self.initial_sparsity)
        check(self.initial_sparsity <= self.final_sparsity, "initial_sparsity", self.initial_sparsity,
              f"<= final_sparsity ({self.final_sparsity})")
        check(0 <= self.start_fraction < self.end_fraction <= 1, "start_fraction/end_fraction",
              (self.start_fraction, self.end_fraction), "0 <= start_fraction < end_fraction <= 1")
        check(isinstance(self.every, int) and self.every >= 1, "every", self.every, "an integer >= 1")
        check(self.scope in SCOPES, "scope", self.scope, f"one of {SCOPES}")


@register("compress", "gmp", GMPConfig, "gradual magnitude pruning during training on a cubic sparsity schedule",
          paper="To prune, or not to prune (1710.01878)", reports="sparsity", during_training=True)
class GMP(Compressor):
    def on_fit_start(self, state) -> None:
        planned = state.planned_steps
        c = self.config
        self.t0 = int(c.start_fraction * planned)
        self.n = max(1, (int(c.end_fraction * planned) - self.t0) // c.every)
        self.history: list[tuple[int, float]] = []

    def _update(self, model, head, sparsity: float) -> None:
        layers = target_layers(model, head, include_head=self.config.include_head)
        make_permanent(model)  # previous mask → zeros, so pruned weights stay the smallest
        apply_masks(model, magnitude_masks({n: m.weight for n, m in layers}, sparsity, self.config.scope))

    def after_step(self, state) -> None:
        t, c = state.step, self.config
        if t >= self.t0 and (t - self.t0) % c.every == 0 and (t - self.t0) // c.every <= self.n:
            s = gmp_sparsity(t, c.final_sparsity, c.initial_sparsity, self.t0, self.n, c.every)
            self._update(state.model, state.task.head, s)
            self.history.append((t, s))

    def compress(self, model, task=None):  # reach the final sparsity (if training stopped early), then fix masks
        head = task.head if task else ()
        self._update(model, head, self.config.final_sparsity)
        make_permanent(model)
        rep = weight_sparsity(target_layers(model, head, include_head=self.config.include_head))
        return {"method": "gmp", "target_sparsity": self.config.final_sparsity,
                "schedule": getattr(self, "history", []), **rep}
