"""Random baselines: a static random subset, and RS2 — a fresh random subset every epoch.

RS2: Okanovic et al., "Repeated Random Sampling for Minimizing the Time-to-Accuracy of Learning" (2305.18424),
the variant *without replacement* (their Alg. 1 with replacement=False): passes over the data are random
permutations of all n rows laid end to end, and epoch e takes the next k = round(f·n) rows of that stream. When an
epoch straddles two passes it takes the rest of the old pass and then rows of the new one that are not already in
the epoch; a row it skips stays at the front of the stream for the next epoch. So every row is drawn once per
pass, and after E epochs each row's count is within 1 of E·k/n, for any k. No scoring cost.
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
    out, stream = [], torch.empty(0, dtype=torch.long)
    for _ in range(epochs):
        while len(stream.unique()) < k:  # not enough distinct rows left: lay the next pass after the stream
            stream = torch.cat([stream, torch.randperm(n, generator=generator)])
        first = torch.ones(len(stream), dtype=torch.bool)  # the first occurrence of each row in the stream
        order = torch.argsort(stream, stable=True)
        sorted_ids = stream[order]
        first[order[1:][sorted_ids[1:] == sorted_ids[:-1]]] = False
        take = first.nonzero().flatten()[:k]  # the next k distinct rows, in stream order
        out.append(stream[take])
        keep = torch.ones(len(stream), dtype=torch.bool)
        keep[take] = False
        stream = stream[keep]
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
        state.data_report["kept_rows"] = len(self.plan[0])  # per epoch (a fresh subset each epoch)
        replan_steps(state, len(self.plan[0]))

    def on_epoch_start(self, state: TrainState) -> None:
        state.epoch_indices = self.plan[state.epoch]
