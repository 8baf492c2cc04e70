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


def length_grouped(order: torch.Tensor, lengths: torch.Tensor | None, batch_size: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Length-grouped batches (as Hugging Face's ``group_by_length``): cut the shuffled order into mega-batches of
    50 batches, sort each by length (longest first) so a batch holds rows of similar length, and keep the
    mega-batches in their random order. With ``generator`` the full batches of each mega-batch are then shuffled
    (a partial one stays last, so later batches stay aligned): otherwise a data set of ≤ 50 batches is one
    mega-batch and every epoch runs from the longest rows to the shortest — an ordering that cost 2–5 points of
    accuracy on TREC in benchmarks/speed.py. Rows without lengths (non-token data) are left as they are."""
    if lengths is None:
        return order
    chunks = []
    for c in order.split(50 * batch_size):
        c = c[torch.argsort(lengths[c], descending=True, stable=True)]
        k = len(c) // batch_size
        if generator is not None and k > 1:
            full = c[: k * batch_size].view(k, batch_size)[torch.randperm(k, generator=generator)]
            c = torch.cat([full.reshape(-1), c[k * batch_size:]])
        chunks.append(c)
    return torch.cat(chunks) if chunks else order
