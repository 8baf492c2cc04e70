"""Shared parts of the data selectors: the subset-selector base class, proxy training (through the run's own
Trainer, ``state.fit_proxy``) and scoring passes whose FLOPs and wall time are counted so the net saving is
visible, and the stratified budget allocation used by CCS and S2L.

Written here because no maintained library offers selection hooks for an arbitrary PyTorch loop (DeepCore and
the papers' repositories are research scripts tied to their own training code).
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch

from ...engine.callbacks import Callback, TrainState
from ...engine.errors import ConfigError, check, check_fraction
from ...engine.meters import count_flops
from ..base import DataSelector, trainable_named_parameters


def check_rows_fraction(fraction: float, field: str = "fraction") -> None:
    """A fraction of train rows (kept, or used by a proxy): in (0, 1]."""
    check_fraction(field, fraction, "(", "]", "the fraction of train rows", "Fix: e.g. fraction: 0.3")


def keep_count(n: int, fraction: float) -> int:
    """Rows kept out of ``n``: round(fraction · n), at least 1."""
    return max(1, min(n, round(fraction * n)))


def replan_steps(state: TrainState, rows_per_epoch: int) -> None:
    """Selectors that change the rows per epoch re-plan the LR schedule so it ends on the last step. A
    ``max_steps`` cap (planned steps below the full-data count) stays a cap."""
    full = state.epochs * math.ceil(state.task.n_train / state.batch_size)
    planned = state.planned_steps or full
    steps = state.epochs * math.ceil(rows_per_epoch / state.batch_size)
    state.planned_steps = min(planned, steps) if planned < full else steps


def allocate_across_strata(strata: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Pick ``k`` rows spread as evenly as possible over strata (ids in ``strata``, one per row).

    The allocation of CCS (Zheng et al., 2210.15809, Alg. 1) and S2L (2403.07384, Alg. 1): visit strata from the
    smallest; each takes min(its size, ⌊remaining budget / strata left⌋) rows uniformly at random.
    Returns sorted row ids (unique).
    """
    ids = strata.unique()
    sizes = torch.stack([(strata == s).sum() for s in ids])
    order = torch.argsort(sizes, stable=True)
    chosen, budget = [], k
    for j, pos in enumerate(order.tolist()):
        rows = (strata == ids[pos]).nonzero().flatten()
        take = min(len(rows), budget // (len(ids) - j))
        chosen.append(rows[torch.randperm(len(rows), generator=generator)[:take]])
        budget -= take
    out = torch.cat(chosen) if chosen else torch.empty(0, dtype=torch.long)
    if budget > 0:  # rounding left a few rows: fill uniformly from the rest
        mask = torch.ones(len(strata), dtype=torch.bool)
        mask[out] = False
        rest = mask.nonzero().flatten()
        out = torch.cat([out, rest[torch.randperm(len(rest), generator=generator)[:budget]]])
    return out.sort().values


class ScoringMeter:
    """Counts FLOPs (once per batch shape, as the Trainer does) and wall time of scoring work."""

    def __init__(self) -> None:
        self.flops = 0.0
        self.t0 = time.perf_counter()
        self._per_shape: dict[tuple, float] = {}

    def run(self, kind: str, batch: dict, fn: Callable[[], object]) -> object:
        key = (kind, *((k, tuple(v.shape)) for k, v in batch.items()))
        if key not in self._per_shape:
            flops, out = count_flops(fn)
            self._per_shape[key] = flops
        else:
            out = fn()
        self.flops += self._per_shape[key]
        return out

    def report(self, state: TrainState, method: str) -> None:
        """Add the scoring FLOPs to the run's train FLOPs and record the cost separately."""
        wall = time.perf_counter() - self.t0
        state.flops += self.flops
        state.data_report["scoring"] = {"method": method, "flops": self.flops, "wall_time_s": wall}


def require_classes(state: TrainState, method: str) -> torch.Tensor:
    """The train labels as class ids, for methods defined on classifiers (error norms, forgetting events, class
    balance); a named error on other task kinds (a language model's labels are tokens, not classes)."""
    if state.task.kind != "classification":
        raise ConfigError(f"data.{method} needs class labels, but task {state.task.name!r} is a {state.task.kind} "
                          "task. Fix: use rs2, random, loss_filter, color_filter or s2l (they score with the task's "
                          "own loss).")
    return state.task.train["labels"]


def check_proxy(epochs: int, lr: float, batch_size: int, prefix: str = "proxy_") -> None:
    check(isinstance(epochs, int) and epochs >= 1, f"{prefix}epochs", epochs, "an integer ≥ 1")
    check(isinstance(lr, (int, float)) and lr > 0, f"{prefix}lr", lr, "a number > 0")
    check(isinstance(batch_size, int) and batch_size >= 1, f"{prefix}batch_size", batch_size, "an integer ≥ 1")


def copy_model(state: TrainState) -> torch.nn.Module:
    """A scoring proxy: a deep copy of the run's model before training (fresh init, same trainable set)."""
    return copy.deepcopy(state.model)


def forward_rows(state: TrainState, model: torch.nn.Module, rows: torch.Tensor, meter: ScoringMeter,
                 batch_size: int = 256) -> torch.Tensor:
    """Logits [len(rows), C] of ``model`` on train ``rows`` (eval mode, no grad), FLOPs metered."""
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for idx in rows.split(batch_size):
            b = state.task.batch("train", idx)
            out.append(meter.run("fwd", b, lambda: state.task.forward(model, b)))
    model.train(was)
    return torch.cat(out)


def loss_rows(state: TrainState, model: torch.nn.Module, rows: torch.Tensor, meter: ScoringMeter,
              batch_size: int | None = None) -> torch.Tensor:
    """The task's per-row loss [len(rows)] of ``model`` on train ``rows`` (eval mode, no grad), FLOPs metered:
    cross-entropy for a classifier, the mean completion-token loss for a language model."""
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for idx in rows.split(batch_size or state.task.eval_batch_size):
            b = state.task.batch("train", idx)
            out.append(meter.run("loss", b, lambda: state.task.per_sample_loss(state.task.forward(model, b), b)))
    model.train(was)
    return torch.cat(out).float()


def train_epochs(state: TrainState, model: torch.nn.Module, rows: torch.Tensor, epochs: int, lr: float,
                 batch_size: int, meter: ScoringMeter, generator: torch.Generator,
                 after_epoch: Callable[[int], None] | None = None,
                 after_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None) -> None:
    """Train a proxy ``model`` on ``rows`` for ``epochs`` (AdamW, mean CE) through the run's Trainer
    (``state.fit_proxy``); its FLOPs go to ``meter``.

    ``after_batch(index, per_sample_loss, logits)`` sees each batch's detached outputs (forgetting uses them);
    ``after_epoch(epoch)`` runs after each epoch (EL2N/S2L score there)."""
    opt = torch.optim.AdamW([p for _, p in trainable_named_parameters(model)], lr=lr)
    proxy = state.fit_proxy(model, opt, rows, epochs, batch_size, generator, [_ProxyHooks(after_epoch, after_batch)])
    meter.flops += proxy.flops


class _ProxyHooks(Callback):
    def __init__(self, after_epoch, after_batch) -> None:
        self.after_epoch, self.after_batch = after_epoch, after_batch

    def after_step(self, state: TrainState) -> None:
        if self.after_batch is not None:
            self.after_batch(state.batch["index"], state.per_sample_loss, state.logits)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.after_epoch is not None:
            self.after_epoch(state.epoch)


class SubsetSelector(DataSelector):
    """Static selector: ``select(state) -> row ids`` runs once in on_fit_start; every epoch visits the kept rows
    in a fresh order drawn from the run's data RNG. Subclasses implement ``select``."""

    name = "subset"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.keep: torch.Tensor | None = None

    def select(self, state: TrainState) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_fit_start(self, state: TrainState) -> None:
        self.keep = self.select(state).long()
        state.data_report["kept_rows"] = int(len(self.keep))
        replan_steps(state, len(self.keep))

    def on_epoch_start(self, state: TrainState) -> None:
        state.epoch_indices = self.keep[torch.randperm(len(self.keep), generator=state.generator)]
