"""Early stopping on validation and keeping the best checkpoint (``schedule.early_stopping_patience``,
``schedule.keep_best``, ``schedule.monitor``): the Trainer hands every validation evaluation to a ``BestTracker``;
with ``keep_best`` a run whose last evaluation is worse than an earlier one ends with the earlier weights (and says
which), as Hugging Face's ``load_best_model_at_end`` and Keras' ``restore_best_weights``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

LOWER_IS_BETTER = ("eval_loss", "perplexity")


@dataclass
class BestTracker:
    monitor: str = "accuracy"
    min_delta: float = 0.0
    patience: int | None = None  # evaluations without improvement before stopping (None: never stop)
    keep: bool = False  # snapshot the weights at the best evaluation
    best: dict[str, Any] = field(default_factory=dict)  # {"step", "epoch", "value"} of the best evaluation
    waited: int = 0
    _weights: dict[str, torch.Tensor] | None = None

    def better(self, value: float) -> bool:
        if not self.best:
            return True
        sign = -1 if self.monitor in LOWER_IS_BETTER else 1
        return sign * (value - self.best["value"]) > self.min_delta

    def observe(self, metrics: dict[str, float], step: int, epoch: int, model: nn.Module) -> bool:
        """Record an evaluation; returns True when patience ran out (the run should stop)."""
        value = float(metrics[self.monitor])
        if self.better(value):
            self.best, self.waited = {"step": step, "epoch": epoch, "value": value, "monitor": self.monitor}, 0
            if self.keep:  # the trainable tensors only: frozen weights do not change
                self._weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            return False
        self.waited += 1
        return self.patience is not None and self.waited >= self.patience

    def restore(self, model: nn.Module, step: int) -> bool:
        """Put the best evaluation's weights back when it was not the last; returns whether it did."""
        if not self.keep or self._weights is None or self.best.get("step") == step:
            return False
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, w in self._weights.items():
                params[n].copy_(w)
        return True
