"""The Trainer's hooks and the state they see.

Eight named hooks, all no-ops by default (STYLE rule 5). Data selectors, pruning schedules, trial stoppers and
loggers are Callbacks: they read and write ``TrainState`` — e.g. a selector sets ``state.epoch_indices`` in
``on_epoch_start``; a stopper sets ``state.should_stop`` in ``on_eval``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from torch import nn

    from .task import Task, TensorDict


@dataclass
class TrainState:
    task: "Task"
    model: "nn.Module"
    optimizer: Any
    seed: int
    epochs: int
    batch_size: int
    generator: torch.Generator  # the data-order RNG; selectors draw from it so runs stay seeded
    planned_steps: int = 0  # optimizer steps the LR schedule spans; selectors that shrink epochs re-plan it
    scheduler: Any = None
    epoch: int = 0
    step: int = 0
    samples_seen: int = 0
    tokens_seen: int = 0  # real (attended) tokens of the training batches (token tasks only)
    padded_tokens_seen: int = 0  # tokens computed on, padding included
    flops: float = 0.0  # train FLOPs so far (forward+backward and optimizer step of every step + what callbacks add)
    optimizer_flops: float = 0.0  # the optimizer steps' share of ``flops`` (matmul FLOPs of the update)
    cache_flops: float = 0.0  # the one-time frozen-prefix caching pass's share of ``flops`` (features.py)
    wall_time: float = 0.0  # train seconds so far, eval and metering excluded (updated after each step)
    # Set by data selectors in on_epoch_start: which train rows this epoch visits (in order), and
    # optional per-row loss weights (length n_train, mean ~1).
    epoch_indices: torch.Tensor | None = None
    sample_weights: torch.Tensor | None = None
    # The current step, for before_step/after_backward/after_step hooks.
    batch: "TensorDict | None" = None
    loss: torch.Tensor | None = None
    per_sample_loss: torch.Tensor | None = None  # detached, shape [B]
    logits: torch.Tensor | None = None  # detached, shape [B, C]
    metrics: dict[str, float] = field(default_factory=dict)  # last validation eval's scalars
    evaluation: Any = None  # the last validation Evaluation (metrics, details, flags)
    curve: list[dict[str, float]] = field(default_factory=list)
    should_stop: bool = False
    stop_reason: str = ""
    pruned: bool = False  # set by a TrialStopper: the run ends as PRUNED, not COMPLETE
    # What methods hand over to the RunResult: one report per compressor (sparsity, ranks, bits, ...), and the
    # data selector's report (kept_rows, scoring {method, flops, wall_time_s}, synthetic_rows, temperature).
    compress_reports: list[dict[str, Any]] = field(default_factory=list)
    data_report: dict[str, Any] = field(default_factory=dict)
    best_checkpoint: dict[str, Any] = field(default_factory=dict)  # keep_best: which evaluation the weights are from
    peak_rss_bytes: int = 0
    peak_cuda_bytes: int = 0
    # Set by the Trainer: train a proxy model (a selector's scorer) on rows of this task through a Trainer —
    # ``fit_proxy(model, optimizer, rows, epochs, batch_size, generator, callbacks) -> TrainState``.
    fit_proxy: Callable[..., "TrainState"] | None = field(default=None, repr=False)

    def stop(self, reason: str, pruned: bool = False) -> None:
        self.should_stop, self.stop_reason, self.pruned = True, reason, pruned


class Callback:
    """Base class for Trainer hooks. Override any subset; each receives the live TrainState."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def before_step(self, state: TrainState) -> None: ...
    def after_backward(self, state: TrainState) -> None: ...
    def after_step(self, state: TrainState) -> None: ...
    def on_eval(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...
