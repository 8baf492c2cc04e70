"""S2L: Yang et al., "SmallToLarge (S2L): Scalable Data Selection for Fine-tuning Large Language Models by
Summarizing Training Trajectories of Small Models" (2403.07384).

Train a small proxy on all rows and record each row's loss after every proxy epoch: the trajectory
L_i = (ℓ_i^{(1)}, …, ℓ_i^{(T)}). Cluster the trajectories with K-means (scikit-learn) into ``clusters`` groups and
select the budget balanced across clusters, smallest cluster first, each taking min(size, remaining/left) rows at
random (their Alg. 1). The proxy is a copy of the run's model at init (pass a smaller task model for a truly
smaller proxy); its FLOPs are added to the run's and reported in ``data_report["scoring"]`` (RunResult.extra["data_scoring"]).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ._common import (ScoringMeter, SubsetSelector, allocate_across_strata, check_rows_fraction, check_proxy, copy_model,
                      loss_rows, keep_count, train_epochs)


def cluster_trajectories(traj: torch.Tensor, clusters: int, seed: int) -> torch.Tensor:
    """K-means cluster ids [n] of loss trajectories [n, T] (scikit-learn KMeans, n_init=3)."""
    from sklearn.cluster import KMeans

    k = min(clusters, len(traj))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(traj.double().numpy())
    return torch.as_tensor(km.labels_, dtype=torch.long)


def s2l_select(traj: torch.Tensor, k: int, clusters: int, seed: int, generator: torch.Generator) -> torch.Tensor:
    """S2L Alg. 1: sorted ids of k rows drawn evenly across trajectory clusters."""
    return allocate_across_strata(cluster_trajectories(traj, clusters, seed), k, generator)


@dataclass(frozen=True)
class S2LConfig:
    fraction: float = 0.5
    clusters: int = 20
    proxy_epochs: int = 3
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)
        check(isinstance(self.clusters, int) and self.clusters >= 1, "clusters", self.clusters, "an integer ≥ 1")
        check_proxy(self.proxy_epochs, self.proxy_lr, self.proxy_batch_size)


@register("data", "s2l", S2LConfig, "cluster a small proxy's per-row loss trajectories; sample evenly across clusters",
          paper="SmallToLarge (S2L): Scalable Data Selection for Fine-tuning LLMs (2403.07384)",
          fraction=True, unique_rows=True)
class S2L(SubsetSelector):
    def trajectories(self, state: TrainState) -> torch.Tensor:
        c, n = self.config, state.task.n_train
        meter, proxy, rows = ScoringMeter(), copy_model(state), torch.arange(n)
        cols: list[torch.Tensor] = []

        def after_epoch(e):
            cols.append(loss_rows(state, proxy, rows, meter))

        train_epochs(state, proxy, rows, c.proxy_epochs, c.proxy_lr, c.proxy_batch_size, meter,
                     torch.Generator().manual_seed(state.seed + 49979687), after_epoch)
        meter.report(state, "s2l")
        return torch.stack(cols, 1)  # [n, T]

    def select(self, state: TrainState) -> torch.Tensor:
        traj = self.trajectories(state)
        return s2l_select(traj, keep_count(len(traj), self.config.fraction), self.config.clusters, state.seed,
                          state.generator)
