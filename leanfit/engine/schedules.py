"""Learning-rate schedules and batch orders the Trainer uses: warmup + linear / cosine / constant decay or 1cycle
(torch's LambdaLR / OneCycleLR), and length-grouped batches."""
from __future__ import annotations

import math
from typing import Any

import torch

from .recipe import Schedule


def lr_factor(step: int, total: int, sch: Schedule) -> float:
    """Warmup (linear from 1/warm) then linear decay, cosine decay or constant: the LR multiplier at ``step``."""
    warm = int(sch.warmup_ratio * total)
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    if sch.lr_schedule == "linear":
        return max(0.0, 1 - t)
    if sch.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def lr_scheduler(opt: Any, sch: Schedule, planned_steps: int) -> Any:
    """The torch LR scheduler for a schedule, or None (constant LR, or an optimizer that sets its own step)."""
    if sch.lr_schedule == "constant" and sch.warmup_ratio == 0:
        return None
    if not isinstance(opt, torch.optim.Optimizer):
        return None  # e.g. zeroth-order optimizers manage their own step size
    total = max(1, int(planned_steps))
    if sch.lr_schedule == "onecycle":
        cyc = any(k in opt.defaults for k in ("momentum", "betas"))
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                   pct_start=max(sch.warmup_ratio, 0.05), cycle_momentum=cyc)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, sch))


def length_grouped(order: torch.Tensor, lengths: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    """Length-grouped batches (as Hugging Face's ``group_by_length``): cut the shuffled order into mega-batches of
    50 batches, sort each by length (longest first) so a batch holds rows of similar length, and keep the
    mega-batches in their random order. Rows without lengths (non-token data) are left as they are."""
    if lengths is None:
        return order
    chunks = [c[torch.argsort(lengths[c], descending=True, stable=True)] for c in order.split(50 * batch_size)]
    return torch.cat(chunks) if chunks else order
