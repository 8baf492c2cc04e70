"""EL2N and GraNd data pruning, with optional CCS coverage sampling.

Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early in Training"
(2107.07075):

- GraNd (their Eq. 2):  χ_t(x, y) = E_w ‖ ∇_{w_t} ℓ(p(w_t, x), y) ‖₂  — the per-sample gradient norm.
- EL2N  (their Eq. 3):  χ_t(x, y) = E_w ‖ p(w_t, x) − onehot(y) ‖₂  — the L2 norm of the error vector.

Both are computed after t = ``score_epochs`` epochs of training a proxy (a copy of the run's model at init; t=0
is allowed and is GraNd-at-init), averaged over ``runs`` independent proxies (the expectation over w). The kept
rows are the ``fraction`` with the highest score (prune the easy ones).

With ``ccs: true`` the rows are instead chosen by Coverage-centric Coreset Selection (Zheng et al.,
"Coverage-centric Coreset Selection for High Pruning Rates", 2210.15809, Alg. 1): drop the ``hard_cut`` hardest
fraction (likely mislabeled), split the remaining score range into ``strata`` equal-width bins and spread the
budget evenly over bins, smallest bin first.

The scoring proxy's FLOPs (training + scoring passes) are added to the run's train FLOPs and reported in
``data_report["scoring"]`` (RunResult.extra["data_scoring"]). Our own code: no maintained library computes these scores for an arbitrary model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine.callbacks import TrainState
from ...engine.errors import check
from ...engine.registry import register
from ..base import trainable_named_parameters
from ._common import (ScoringMeter, SubsetSelector, allocate_across_strata, check_rows_fraction, check_proxy, copy_model, require_classes,
                      forward_rows, keep_count, train_epochs)


def el2n_scores(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """EL2N (Eq. 3) for one proxy: ‖p − onehot(y)‖₂ per row. probs [n, C] (softmax outputs), labels [n]."""
    return (probs - F.one_hot(labels, probs.shape[1]).to(probs.dtype)).norm(dim=1)


class _Stateless(nn.Module):
    def __init__(self, model: nn.Module, forward) -> None:
        super().__init__()
        self.inner, self.fwd = model, forward

    def forward(self, batch: dict) -> torch.Tensor:
        return self.fwd(self.inner, batch)


def per_sample_grad_norms(model: nn.Module, forward, batch: dict) -> torch.Tensor:
    """GraNd (Eq. 2) for one proxy: ‖∇_w ℓ(x_i, y_i)‖₂ over the model's trainable parameters, per row [B].

    Uses ``torch.func.vmap(grad(...))`` (per-sample gradients in one pass); the model is put in eval mode so that
    batch statistics do not couple the rows."""
    from torch.func import functional_call, grad, vmap

    wrapper = _Stateless(model, forward)
    names = [n for n, _ in trainable_named_parameters(wrapper)]
    params = {n: p.detach() for n, p in wrapper.named_parameters() if n in names}
    frozen = {n: p.detach() for n, p in wrapper.named_parameters() if n not in names}
    buffers = dict(wrapper.named_buffers())

    def loss_one(p, row):
        b = {k: v.unsqueeze(0) for k, v in row.items()}
        logits = functional_call(wrapper, {**p, **frozen, **buffers}, (b,))
        return F.cross_entropy(logits, b["labels"])

    was = model.training
    model.eval()
    rows = {k: v for k, v in batch.items() if k != "index"}
    try:
        g = vmap(grad(loss_one), in_dims=(None, 0), randomness="different")(params, rows)
        return torch.sqrt(sum(v.flatten(1).pow(2).sum(1) for v in g.values()))
    except (RuntimeError, NotImplementedError):  # an op without a vmap rule: one backward per row instead
        out = []
        trainable = [p for _, p in trainable_named_parameters(model)]
        for i in range(len(rows["labels"])):
            b = {k: v[i:i + 1] for k, v in rows.items()}
            gs = torch.autograd.grad(F.cross_entropy(forward(model, b), b["labels"]), trainable, allow_unused=True)
            out.append(torch.sqrt(sum(x.pow(2).sum() for x in gs if x is not None)))
        return torch.stack(out).detach()
    finally:
        model.train(was)


def ccs_select(scores: torch.Tensor, k: int, strata: int, hard_cut: float, generator: torch.Generator) -> torch.Tensor:
    """Coverage-centric coreset selection (2210.15809, Alg. 1): sorted ids of k rows."""
    n = len(scores)
    order = torch.argsort(scores, descending=True, stable=True)
    n_cut = min(int(hard_cut * n), n - k)  # never cut so much that fewer than k rows remain
    pool = order[n_cut:]
    s = scores[pool]
    lo, hi = s.min(), s.max()
    width = (hi - lo) / strata if hi > lo else torch.tensor(1.0)
    bins = ((s - lo) / width).floor().clamp(max=strata - 1).long()
    return pool[allocate_across_strata(bins, k, generator)].sort().values


def top_fraction(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted ids of the k highest scores (ties broken by lower id)."""
    return torch.argsort(scores, descending=True, stable=True)[:k].sort().values


@dataclass(frozen=True)
class EL2NConfig:
    fraction: float = 0.5
    score_epochs: int = 2  # proxy epochs before scoring (paper: ~10 of 200 on CIFAR; ~1–10% of training)
    runs: int = 1  # independent proxies averaged (paper: 10)
    ccs: bool = False
    strata: int = 50
    hard_cut: float = 0.0
    proxy_lr: float = 1e-3
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        check_rows_fraction(self.fraction)
        check(isinstance(self.score_epochs, int) and self.score_epochs >= 0, "score_epochs", self.score_epochs,
              "an integer ≥ 0 (proxy epochs before scoring)")
        check(isinstance(self.runs, int) and self.runs >= 1, "runs", self.runs, "an integer ≥ 1")
        check(isinstance(self.ccs, bool), "ccs", self.ccs, "true or false")
        check(isinstance(self.strata, int) and self.strata >= 1, "strata", self.strata, "an integer ≥ 1")
        check(isinstance(self.hard_cut, (int, float)) and 0 <= self.hard_cut < 1, "hard_cut", self.hard_cut,
              "a number in [0, 1) (fraction of hardest rows dropped before CCS)")
        check_proxy(max(1, self.score_epochs), self.proxy_lr, self.proxy_batch_size)


@dataclass(frozen=True)
class GraNdConfig(EL2NConfig):
    """Same fields as EL2N; ``score_epochs: 0`` gives the paper's GraNd at initialisation."""


class _ScoreSelector(SubsetSelector):
    name = "el2n"

    def score_one(self, state: TrainState, model: nn.Module, rows: torch.Tensor, meter: ScoringMeter) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, state: TrainState) -> torch.Tensor:
        c, n = self.config, state.task.n_train
        require_classes(state, self.name)
        meter, rows, total = ScoringMeter(), torch.arange(n), torch.zeros(n)
        g = torch.Generator().manual_seed(state.seed + 7919)
        for r in range(c.runs):
            proxy = copy_model(state)
            if r > 0:  # independent inits for the expectation over w
                torch.manual_seed(state.seed + 7919 + r)
                for m in proxy.modules():
                    if hasattr(m, "reset_parameters") and any(p.requires_grad for p in m.parameters(recurse=False)):
                        m.reset_parameters()
            if c.score_epochs:
                train_epochs(state, proxy, rows, c.score_epochs, c.proxy_lr, c.proxy_batch_size, meter, g)
            total += self.score_one(state, proxy, rows, meter)
        meter.report(state, self.name)
        return total / c.runs

    def select(self, state: TrainState) -> torch.Tensor:
        s = self.scores(state)
        k = keep_count(len(s), self.config.fraction)
        if self.config.ccs:
            return ccs_select(s, k, self.config.strata, self.config.hard_cut, state.generator)
        return top_fraction(s, k)


@register("data", "el2n", EL2NConfig, "keep the rows with the largest early-training error norm ‖p−y‖ (opt. CCS)",
          paper="Deep Learning on a Data Diet (2107.07075); CCS: Coverage-centric Coreset Selection (2210.15809)",
          fraction=True, unique_rows=True)
class EL2N(_ScoreSelector):
    name = "el2n"

    def score_one(self, state, model, rows, meter):
        probs = forward_rows(state, model, rows, meter).softmax(-1)
        return el2n_scores(probs, state.task.train["labels"][rows])


@register("data", "grand", GraNdConfig, "keep the rows with the largest per-sample gradient norm (opt. CCS)",
          paper="Deep Learning on a Data Diet (2107.07075); CCS: Coverage-centric Coreset Selection (2210.15809)",
          fraction=True, unique_rows=True)
class GraNd(_ScoreSelector):
    name = "grand"

    def score_one(self, state, model, rows, meter):
        out = []
        for idx in rows.split(64):
            b = state.task.batch("train", idx)
            out.append(meter.run("grand", b, lambda: per_sample_grad_norms(model, state.task.forward, b)))
        return torch.cat(out)
