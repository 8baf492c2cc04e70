"""Momentum difficulty reweighting: Bhattacharyya et al., "Diffusion Deepfake" (2404.01579), the *momentum
difficulty boosting* strategy: each row's learning difficulty is a momentum (exponential moving) average of its
training loss, and rows get loss weights that grow with that difficulty, so hard rows count more as training goes.

Our reading of it (the normalisation is ours): after every step the rows of the batch update
    d_i ← m · d_i + (1 − m) · ℓ_i          (d_i starts at the first observed loss)
and at each epoch start the weights are
    w_i = (d_i / mean_j d_j)^γ,  renormalised to mean 1, clipped to [w_min, w_max] (then renormalised),
with rows not yet seen at weight 1. γ = 0 is plain training. No scoring cost: the losses are the training
step's own (``state.per_sample_loss``). Our own code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ..base import DataSelector


def ema_update(d: torch.Tensor, seen: torch.Tensor, index: torch.Tensor, loss: torch.Tensor, momentum: float) -> None:
    """In place: d[index] ← m·d[index] + (1−m)·loss for seen rows; first sighting sets d = loss."""
    old = d[index]
    d[index] = torch.where(seen[index], momentum * old + (1 - momentum) * loss, loss)
    seen[index] = True


def difficulty_weights(d: torch.Tensor, seen: torch.Tensor, gamma: float, w_min: float, w_max: float) -> torch.Tensor:
    """w_i = (d_i / mean d)^γ over seen rows, mean 1, clipped to [w_min, w_max]; unseen rows weight 1."""
    w = torch.ones_like(d)
    if seen.any():
        ds = d[seen].clamp_min(1e-12)
        ws = (ds / ds.mean()) ** gamma
        ws = (ws / ws.mean()).clamp(w_min, w_max)
        w[seen] = ws / ws.mean()
    return w


@dataclass(frozen=True)
class MomentumConfig:
    momentum: float = 0.9
    gamma: float = 1.0
    w_min: float = 0.1
    w_max: float = 10.0

    def __post_init__(self) -> None:
        check(isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1, "momentum", self.momentum,
              "a number in [0, 1)")
        check(isinstance(self.gamma, (int, float)) and self.gamma >= 0, "gamma", self.gamma, "a number ≥ 0")
        check(isinstance(self.w_min, (int, float)) and 0 < self.w_min <= 1, "w_min", self.w_min, "a number in (0, 1]")
        check(isinstance(self.w_max, (int, float)) and self.w_max >= 1, "w_max", self.w_max, "a number ≥ 1")


@register("data", "momentum_difficulty", MomentumConfig, "per-row loss weights from a momentum average of its loss",
          paper="Diffusion Deepfake — momentum difficulty boosting (2404.01579)")
class MomentumDifficulty(DataSelector):
    def on_fit_start(self, state: TrainState) -> None:
        n = state.task.n_train
        self.d, self.seen = torch.zeros(n), torch.zeros(n, dtype=torch.bool)

    def on_epoch_start(self, state: TrainState) -> None:
        c = self.config
        state.sample_weights = difficulty_weights(self.d, self.seen, c.gamma, c.w_min, c.w_max)

    def after_step(self, state: TrainState) -> None:
        if state.per_sample_loss is not None:
            ema_update(self.d, self.seen, state.batch["index"].cpu(), state.per_sample_loss.float().cpu(),
                       self.config.momentum)
