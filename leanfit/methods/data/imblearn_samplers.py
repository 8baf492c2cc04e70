"""Random over-/under-sampling and SMOTE through imbalanced-learn (wrapped, not re-written).

- ``random_oversample`` / ``random_undersample``: ``imblearn.over_sampling.RandomOverSampler`` /
  ``imblearn.under_sampling.RandomUnderSampler``; their ``sample_indices_`` become the rows every epoch visits
  (shuffled each epoch). Works for any task (only labels are needed).
- ``smote``: Chawla et al., "SMOTE: Synthetic Minority Over-sampling Technique" (1106.1813), Eq.
  x_new = x_i + λ (x_nn − x_i), λ ~ U(0, 1), via ``imblearn.over_sampling.SMOTE`` on the task's raw float features
  (a single float input tensor, flattened). The synthetic rows are appended to the task's train tensors for the
  run (restored at fit end). Token-id inputs (text tasks) are rejected: interpolated token ids are meaningless.

``sampling_strategy`` is passed to imbalanced-learn unchanged ("auto", "minority", "not majority", "all", or a
float for two classes). ``random_state`` is the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import ConfigError, check, require
from ...engine.registry import register
from ..base import DataSelector
from ._common import replan_steps, require_classes

STRATEGIES = ("auto", "minority", "not minority", "not majority", "all", "majority")


def _check_strategy(value) -> None:
    ok = value in STRATEGIES or (isinstance(value, float) and 0 < value <= 1)
    check(ok, "sampling_strategy", value, f"one of {STRATEGIES} or a float in (0, 1] (two classes only)")


def resample_indices(labels: torch.Tensor, kind: str, sampling_strategy, seed: int) -> torch.Tensor:
    """Row ids chosen by imbalanced-learn's RandomOverSampler (``kind='over'``) or RandomUnderSampler."""
    import numpy as np

    mod = require("imblearn", package="imbalanced-learn")
    cls = mod.over_sampling.RandomOverSampler if kind == "over" else mod.under_sampling.RandomUnderSampler
    s = cls(sampling_strategy=sampling_strategy, random_state=seed)
    y = labels.numpy()
    s.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
    return torch.as_tensor(s.sample_indices_, dtype=torch.long)


def float_feature_key(train: dict) -> str:
    keys = [k for k, v in train.items() if k not in ("labels", "index")]
    if len(keys) != 1 or not torch.is_floating_point(train[keys[0]]):
        raise ConfigError(
            f"smote needs exactly one float input tensor (raw features), but the task's train inputs are "
            f"{ {k: str(train[k].dtype) for k in keys} }. Fix: use random_oversample, upsample or class_balanced "
            "for token inputs.")
    return keys[0]


def smote_rows(x: torch.Tensor, labels: torch.Tensor, sampling_strategy, k_neighbors: int, seed: int):
    """SMOTE (imblearn) on flattened features: returns (synthetic x [m, ...], synthetic labels [m])."""
    mod = require("imblearn", package="imbalanced-learn")
    n = len(labels)
    s = mod.over_sampling.SMOTE(sampling_strategy=sampling_strategy, k_neighbors=k_neighbors, random_state=seed)
    xr, yr = s.fit_resample(x.reshape(n, -1).double().numpy(), labels.numpy())
    new_x = torch.as_tensor(xr[n:], dtype=x.dtype).reshape(-1, *x.shape[1:])
    return new_x, torch.as_tensor(yr[n:], dtype=labels.dtype)


@dataclass(frozen=True)
class ResampleConfig:
    sampling_strategy: str | float = "auto"

    def __post_init__(self) -> None:
        _check_strategy(self.sampling_strategy)


class _Resample(DataSelector):
    kind = "over"

    def on_fit_start(self, state: TrainState) -> None:
        self.rows = resample_indices(require_classes(state, self.kind), self.kind, self.config.sampling_strategy, state.seed)
        state.data_report["kept_rows"] = int(len(self.rows))
        replan_steps(state, len(self.rows))

    def on_epoch_start(self, state: TrainState) -> None:
        state.epoch_indices = self.rows[torch.randperm(len(self.rows), generator=state.generator)]


@register("data", "random_oversample", ResampleConfig, "imbalanced-learn RandomOverSampler: repeat minority rows",
          paper="imbalanced-learn (Lemaître et al., JMLR 2017)", unique_rows=False)
class RandomOversample(_Resample):
    kind = "over"


@register("data", "random_undersample", ResampleConfig, "imbalanced-learn RandomUnderSampler: drop majority rows",
          paper="imbalanced-learn (Lemaître et al., JMLR 2017)", unique_rows=True)
class RandomUndersample(_Resample):
    kind = "under"


@dataclass(frozen=True)
class SmoteConfig:
    sampling_strategy: str | float = "auto"
    k_neighbors: int = 5

    def __post_init__(self) -> None:
        _check_strategy(self.sampling_strategy)
        check(isinstance(self.k_neighbors, int) and self.k_neighbors >= 1, "k_neighbors", self.k_neighbors,
              "an integer ≥ 1 (and < the smallest class size)")


@register("data", "smote", SmoteConfig, "imbalanced-learn SMOTE on raw float features: synthetic minority rows",
          paper="SMOTE: Synthetic Minority Over-sampling Technique (1106.1813)", unique_rows=True)
class Smote(DataSelector):
    def on_fit_start(self, state: TrainState) -> None:
        task = state.task
        key = float_feature_key(task.train)
        self.original = task.train
        new_x, new_y = smote_rows(task.train[key], task.train["labels"], self.config.sampling_strategy,
                                  self.config.k_neighbors, state.seed)
        replan_steps(state, task.n_train + len(new_y))  # before the task grows
        task.train = {key: torch.cat([task.train[key], new_x]), "labels": torch.cat([task.train["labels"], new_y])}
        state.data_report["synthetic_rows"] = int(len(new_y))

    def on_epoch_start(self, state: TrainState) -> None:
        state.epoch_indices = torch.randperm(state.task.n_train, generator=state.generator)

    def on_fit_end(self, state: TrainState) -> None:
        state.task.train = self.original  # the task object is shared: leave it as we found it
