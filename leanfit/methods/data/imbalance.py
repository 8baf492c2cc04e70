"""Class-imbalance methods: temperature upsampling vs loss upweighting, the Cooldown schedule, and class-balanced
loss weights.

Li et al., "Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets" (2410.04579). With class
frequencies q_c = n_c / N, the temperature distribution is (their Eq. 1)

    p_c(T) = q_c^{1/T} / Σ_c' q_c'^{1/T}          (T = 1: natural; T → ∞: uniform over classes)

- ``upsample`` (Temperature Sampling): each epoch draws ⌊f·N⌉ rows *with replacement*, row i with probability
  p_{c(i)} / n_{c(i)}.
- ``upweight`` (Scalarization): every row once per epoch, loss weight w_i = p_{c(i)} · N / n_{c(i)}, so the
  Trainer's mean of w_i·ℓ_i equals Σ_c p_c · L_c (mean weight 1). Equivalent in full-batch GD, noisier in SGD.
- ``cooldown``: upsampling whose temperature starts high (``t_start``) and is lowered to ``t_end`` — held for the
  first ``hold`` fraction of epochs, then linear down to ``t_end`` at the last epoch (the paper's idea; the exact shape is ours).

Cui et al., "Class-Balanced Loss Based on Effective Number of Samples" (1901.05555), Eq. 3 and Sec. 4:
``class_balanced`` sets w_c = (1 − β) / (1 − β^{n_c}), normalised so Σ_c w_c = C, on every row of class c.

Our own code: no maintained library offers these as samplers/weights for a PyTorch loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ..base import DataSelector
from ._common import check_rows_fraction, keep_count, replan_steps, require_classes


def class_counts(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes or int(labels.max()) + 1).double()


def temperature_probs(counts: torch.Tensor, temperature: float) -> torch.Tensor:
    """p_c ∝ (n_c/N)^{1/T} over classes with n_c > 0 (2410.04579, Eq. 1); T = inf gives uniform."""
    q = counts / counts.sum()
    present = counts > 0
    logits = torch.where(present, q.clamp_min(1e-300).log() / temperature if math.isfinite(temperature)
                         else torch.zeros_like(q), torch.full_like(q, -math.inf))
    return torch.softmax(logits, 0)


def upweight_weights(labels: torch.Tensor, temperature: float, num_classes: int | None = None) -> torch.Tensor:
    """Scalarization per-row weights w_i = p_c · N / n_c (mean 1 over rows)."""
    n = class_counts(labels, num_classes)
    w = temperature_probs(n, temperature) * len(labels) / n.clamp_min(1)
    return w[labels].float()


def upsample_indices(labels: torch.Tensor, temperature: float, size: int, generator: torch.Generator,
                     num_classes: int | None = None) -> torch.Tensor:
    """Temperature Sampling: ``size`` row ids drawn with replacement, row i w.p. p_c / n_c."""
    n = class_counts(labels, num_classes)
    row_p = (temperature_probs(n, temperature) / n.clamp_min(1))[labels]
    return torch.multinomial(row_p, size, replacement=True, generator=generator)


def cooldown_temperature(epoch: int, epochs: int, t_start: float, t_end: float, hold: float) -> float:
    """T for ``epoch``: t_start for the first ⌊hold·epochs⌋ epochs, then linear from t_start down to t_end at the
    last epoch."""
    h = math.floor(hold * epochs)
    if epoch < h:
        return float(t_start)
    if epochs - h <= 1:
        return float(t_end)
    return float(t_start + (t_end - t_start) * (epoch - h) / (epochs - h - 1))


def class_balanced_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al. Eq. 3: w_c = (1−β)/(1−β^{n_c}), normalised to Σ_c w_c = C (classes with n_c = 0 get 0)."""
    present = counts > 0
    w = torch.where(present, (1 - beta) / (1 - beta ** counts.clamp_min(1)), torch.zeros_like(counts))
    return w * present.sum() / w.sum()


def _check_t(value: float, field: str) -> None:
    check(isinstance(value, (int, float)) and value >= 1, field, value,
          "a number ≥ 1 (1 = natural class frequencies, larger = flatter, .inf = uniform)")


@dataclass(frozen=True)
class UpsampleConfig:
    temperature: float = 5.0
    fraction: float = 1.0  # rows drawn per epoch, as a fraction of N

    def __post_init__(self) -> None:
        _check_t(self.temperature, "temperature")
        check_rows_fraction(self.fraction)


@register("data", "upsample", UpsampleConfig, "temperature sampling: draw minority classes more often (with "
          "replacement)", paper="Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets (2410.04579)",
          fraction=True, unique_rows=False)
class Upsample(DataSelector):
    name = "upsample"
    def temperature(self, state: TrainState) -> float:
        return self.config.temperature

    def on_fit_start(self, state: TrainState) -> None:
        self.size = keep_count(state.task.n_train, self.config.fraction)
        replan_steps(state, self.size)

    def on_epoch_start(self, state: TrainState) -> None:
        t = self.temperature(state)
        state.data_report.setdefault("temperature", []).append(t)
        state.epoch_indices = upsample_indices(require_classes(state, self.name), t, self.size, state.generator,
                                               state.task.num_classes)


@dataclass(frozen=True)
class UpweightConfig:
    temperature: float = 5.0

    def __post_init__(self) -> None:
        _check_t(self.temperature, "temperature")


@register("data", "upweight", UpweightConfig, "scalarization: natural sampling, minority-class losses upweighted",
          paper="Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets (2410.04579)")
class Upweight(DataSelector):
    name = "upweight"
    def on_fit_start(self, state: TrainState) -> None:
        state.sample_weights = upweight_weights(require_classes(state, self.name), self.config.temperature,
                                                state.task.num_classes)


@dataclass(frozen=True)
class CooldownConfig:
    t_start: float = 10.0
    t_end: float = 1.0
    hold: float = 0.5  # fraction of epochs at t_start before cooling
    fraction: float = 1.0

    def __post_init__(self) -> None:
        _check_t(self.t_start, "t_start")
        _check_t(self.t_end, "t_end")
        check(self.t_end <= self.t_start, "t_end", self.t_end, f"≤ t_start ({self.t_start}); Cooldown lowers T")
        check(isinstance(self.hold, (int, float)) and 0 <= self.hold <= 1, "hold", self.hold, "a number in [0, 1]")
        check_rows_fraction(self.fraction)


@register("data", "cooldown", CooldownConfig, "temperature sampling whose temperature is lowered during training",
          paper="Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets (2410.04579)",
          fraction=True, unique_rows=False)
class Cooldown(Upsample):
    name = "cooldown"
    def temperature(self, state: TrainState) -> float:
        c = self.config
        return cooldown_temperature(state.epoch, state.epochs, c.t_start, c.t_end, c.hold)


@dataclass(frozen=True)
class ClassBalancedConfig:
    beta: float = 0.999

    def __post_init__(self) -> None:
        check(isinstance(self.beta, (int, float)) and 0 <= self.beta < 1, "beta", self.beta,
              "a number in [0, 1) (0 = no reweighting; 0.9–0.9999 in the paper)")


@register("data", "class_balanced", ClassBalancedConfig, "loss weights from the effective number of samples per class",
          paper="Class-Balanced Loss Based on Effective Number of Samples (1901.05555)")
class ClassBalanced(DataSelector):
    name = "class_balanced"
    def on_fit_start(self, state: TrainState) -> None:
        labels = require_classes(state, self.name)
        w = class_balanced_weights(class_counts(labels, state.task.num_classes), self.config.beta)
        state.sample_weights = w[labels].float()
