"""Random baselines: a static random subset, and RS2 — a fresh random subset every epoch.

RS2: Okanovic et al., "Repeated Random Sampling for Minimizing the Time-to-Accuracy of Learning" (2305.18424),
the variant *without replacement*: one permutation of all n rows is cut into consecutive chunks of k = ⌈f·n⌉ rows,
chunk e is epoch e's subset; when a permutation is used up a new one starts. So within ⌈n/k⌉ epochs every row is
seen once before any is repeated (their Alg. 1 with replacement=False). No scoring cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.registry import register
from ..base import DataSelector
from ._common import SubsetSelector, check_rows_fraction, keep_count, replan_steps


def random_subset(n: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Sorted ids of ⌊f·n⌉ rows drawn uniformly without replacement."""
    return torch.randperm(n, generator=generator)[: keep_count(n, fraction)].sort().values


def rs2_schedule(n: int, fraction: float, epochs: int, generator: torch.Generator) -> list[torch.Tensor]:
    """RS2 without replacement: the row ids of each of ``epochs`` epochs (each of length k = round(f·n))."""
    k = keep_count(n, fraction)
    out, pool = [], torch.empty(0, dtype=torch.long)
    for _ in range(epochs):
        if len(pool) < k:  # permutation used up: the leftover rows go first, then a fresh permutation
            fresh = torch.randperm(n, generator=generator)
            fresh = fresh[~torch.isin(fresh, pool)]
            pool = torch.cat([pool, fresh])
        out.append(pool[:k])
        pool = pool[k:]
    return out


@dataclass(frozen=True)
class RandomConfig:
    fraction: float = 0.5

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)


@register("data", "random", RandomConfig, "static random subset of the train rows (fixed for the whole run)",
          paper="baseline", fraction=True, unique_rows=True)
class RandomSubset(SubsetSelector):
    def select(self, state: TrainState) -> torch.Tensor:
        return random_subset(state.task.n_train, self.config.fraction, state.generator)


@dataclass(frozen=True)
class RS2Config:
    fraction: float = 0.5

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)


@register("data", "rs2", RS2Config, "repeated random sampling: a fresh random subset each epoch, no replacement",
          paper="Repeated Random Sampling for Minimizing the Time-to-Accuracy of Learning (2305.18424)",
          fraction=True, unique_rows=True)
class RS2(DataSelector):
    def on_fit_start(self, state: TrainState) -> None:
        self.plan = rs2_schedule(state.task.n_train, self.config.fraction, state.epochs, state.generator)
        replan_steps(state, len(self.plan[0]))

    def on_epoch_start(self, state: TrainState) -> None:
        state.epoch_indices = self.plan[state.epoch]
