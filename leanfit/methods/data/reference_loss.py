"""Selection by the losses of small reference models.

- ``loss_filter``: Ankner et al., "Perplexed by Perplexity: Perplexity-Based Data Pruning With Small Reference
  Models" (2405.20541). A reference model is trained on a random ``ref_fraction`` of the train rows; every row is
  scored by the reference loss ℓ_ref(x) (log-perplexity; for a classifier the cross-entropy), and the kept
  ``fraction`` is the ``low``, ``medium`` (centred on the median) or ``high`` band of that ranking (their Sec. 3).
- ``color_filter``: Brandfonbrener et al., "CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted
  Language Model Pre-training" (2406.10670), Eq. 4: score(x) = −log p(x | θ_prior+down) + log p(x | θ_prior),
  i.e. ℓ_cond(x) − ℓ_prior(x); keep the rows with the lowest score (largest conditional loss reduction). The prior
  model trains on a random ``prior_fraction`` of the rows; the conditional model is the prior fine-tuned on the
  "downstream" set — here a random ``target_fraction`` of the train rows (a clean hold-out stands in for the
  paper's downstream data; pass your own rows with ``target_rows``).

Reference/prior/conditional models are copies of the run's model at init (same trainable set). Their training
and scoring FLOPs are added to the run's; cost in ``data_report["scoring"]`` (RunResult.extra["data_scoring"]). Our own code.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ._common import (ScoringMeter, SubsetSelector, check_rows_fraction, check_proxy, copy_model, loss_rows,
                      keep_count, train_epochs)

BANDS = ("low", "medium", "high")


def band_select(scores: torch.Tensor, k: int, band: str) -> torch.Tensor:
    """Sorted ids of the k rows in the ``low``/``medium``/``high`` band of ``scores`` (2405.20541, Sec. 3)."""
    order = torch.argsort(scores, stable=True)  # ascending
    n = len(order)
    start = {"low": 0, "high": n - k, "medium": (n - k) // 2}[band]
    return order[start:start + k].sort().values


def color_scores(loss_prior: torch.Tensor, loss_cond: torch.Tensor) -> torch.Tensor:
    """CoLoR-Filter Eq. 4 per row: ℓ_cond − ℓ_prior (lower = the downstream data makes the row more likely)."""
    return loss_cond - loss_prior


def _losses(state: TrainState, model, rows: torch.Tensor, meter: ScoringMeter) -> torch.Tensor:
    """Per-row reference loss: log-perplexity of the completion for a language model, cross-entropy for a
    classifier (the task's own loss)."""
    return loss_rows(state, model, rows, meter)


@dataclass(frozen=True)
class LossFilterConfig:
    fraction: float = 0.5
    band: str = "medium"
    ref_fraction: float = 0.3
    ref_epochs: int = 3
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)
        check(self.band in BANDS, "band", self.band, f"one of {BANDS}")
        check_rows_fraction(self.ref_fraction, "ref_fraction")
        check_proxy(self.ref_epochs, self.proxy_lr, self.proxy_batch_size, prefix="ref_")


@register("data", "loss_filter", LossFilterConfig, "keep a low/medium/high band of a small reference model's loss",
          paper="Perplexed by Perplexity: Perplexity-Based Data Pruning With Small Reference Models (2405.20541)",
          fraction=True, unique_rows=True)
class LossFilter(SubsetSelector):
    def scores(self, state: TrainState) -> torch.Tensor:
        c, n = self.config, state.task.n_train
        g = torch.Generator().manual_seed(state.seed + 15485863)
        meter, ref = ScoringMeter(), copy_model(state)
        ref_rows = torch.randperm(n, generator=g)[: keep_count(n, c.ref_fraction)]
        train_epochs(state, ref, ref_rows, c.ref_epochs, c.proxy_lr, c.proxy_batch_size, meter, g)
        s = _losses(state, ref, torch.arange(n), meter)
        meter.report(state, "loss_filter")
        return s

    def select(self, state: TrainState) -> torch.Tensor:
        s = self.scores(state)
        return band_select(s, keep_count(len(s), self.config.fraction), self.config.band)


@dataclass(frozen=True)
class ColorFilterConfig:
    fraction: float = 0.5
    prior_fraction: float = 0.3
    target_fraction: float = 0.1
    prior_epochs: int = 3
    cond_epochs: int = 2
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)
        check_rows_fraction(self.prior_fraction, "prior_fraction")
        check_rows_fraction(self.target_fraction, "target_fraction")
        check_proxy(self.prior_epochs, self.proxy_lr, self.proxy_batch_size, prefix="prior_")
        check(isinstance(self.cond_epochs, int) and self.cond_epochs >= 1, "cond_epochs", self.cond_epochs,
              "an integer ≥ 1")


@register("data", "color_filter", ColorFilterConfig, "keep rows whose loss drops most from a prior to a "
          "target-conditioned reference model", fraction=True, unique_rows=True,
          paper="CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted LM Pre-training (2406.10670)")
class ColorFilter(SubsetSelector):
    def scores(self, state: TrainState) -> torch.Tensor:
        c, n = self.config, state.task.n_train
        g = torch.Generator().manual_seed(state.seed + 32452843)
        perm = torch.randperm(n, generator=g)
        target = perm[: keep_count(n, c.target_fraction)]
        prior_rows = perm[len(target):][: keep_count(n, c.prior_fraction)]
        meter, prior = ScoringMeter(), copy_model(state)
        train_epochs(state, prior, prior_rows, c.prior_epochs, c.proxy_lr, c.proxy_batch_size, meter, g)
        cond = copy.deepcopy(prior)
        train_epochs(state, cond, target, c.cond_epochs, c.proxy_lr, c.proxy_batch_size, meter, g)
        rows = torch.arange(n)
        s = color_scores(_losses(state, prior, rows, meter), _losses(state, cond, rows, meter))
        meter.report(state, "color_filter")
        return s

    def select(self, state: TrainState) -> torch.Tensor:
        s = self.scores(state)
        return torch.argsort(s, stable=True)[: keep_count(len(s), self.config.fraction)].sort().values
