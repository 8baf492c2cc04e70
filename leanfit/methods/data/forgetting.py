"""Forgetting scores: Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network Learning"
(1812.05159).

A *forgetting event* (their Sec. 2) happens for row i when it is classified correctly at one presentation and
incorrectly at the next: acc_i^{t} > acc_i^{t+1}. The score is the number of such events over training; rows never
learned get score ∞ (the paper sorts them as most forgettable). We train a proxy (a copy of the run's model at init)
for ``score_epochs`` epochs, record correctness at each presentation (each row once per epoch), and keep the
``fraction`` with the most forgetting events (ties — e.g. the many unforgettable rows — broken at random).

The proxy's FLOPs are added to the run's train FLOPs; cost reported in ``data_report["scoring"]`` (RunResult.extra["data_scoring"]). Our own code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ._common import ScoringMeter, SubsetSelector, check_rows_fraction, check_proxy, copy_model, require_classes, keep_count, train_epochs


def forgetting_counts(correct: torch.Tensor) -> torch.Tensor:
    """correct: bool [T, n], row i's correctness at its t-th presentation. Returns float [n]: number of 1→0
    transitions, +inf for rows never classified correctly."""
    c = correct.to(torch.int8)
    events = ((c[:-1] == 1) & (c[1:] == 0)).sum(0).float()
    events[~correct.any(0)] = float("inf")
    return events


def rank_with_random_ties(scores: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted ids of the k highest scores; equal scores ordered at random."""
    perm = torch.randperm(len(scores), generator=generator)
    order = perm[torch.argsort(scores[perm], descending=True, stable=True)]
    return order[:k].sort().values


@dataclass(frozen=True)
class ForgettingConfig:
    fraction: float = 0.5
    score_epochs: int = 4
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)
        check(isinstance(self.score_epochs, int) and self.score_epochs >= 2, "score_epochs", self.score_epochs,
              "an integer ≥ 2 (a forgetting event needs two presentations)")
        check_proxy(self.score_epochs, self.proxy_lr, self.proxy_batch_size)


@register("data", "forgetting", ForgettingConfig, "keep the rows a proxy forgets most often during training",
          paper="An Empirical Study of Example Forgetting during Deep Neural Network Learning (1812.05159)",
          fraction=True, unique_rows=True)
class Forgetting(SubsetSelector):
    def scores(self, state: TrainState) -> torch.Tensor:
        c, n = self.config, state.task.n_train
        meter, proxy = ScoringMeter(), copy_model(state)
        correct = torch.zeros(c.score_epochs, n, dtype=torch.bool)
        epoch = [0]
        labels = require_classes(state, "forgetting")

        def after_batch(idx, per, logits):
            correct[epoch[0], idx] = logits.argmax(-1) == labels[idx]

        def after_epoch(e):
            epoch[0] = e + 1

        train_epochs(state, proxy, torch.arange(n), c.score_epochs, c.proxy_lr, c.proxy_batch_size, meter,
                     torch.Generator().manual_seed(state.seed + 104729), after_epoch, after_batch)
        meter.report(state, "forgetting")
        return forgetting_counts(correct)

    def select(self, state: TrainState) -> torch.Tensor:
        s = self.scores(state)
        return rank_with_random_ties(s, keep_count(len(s), self.config.fraction), state.generator)
