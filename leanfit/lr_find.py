"""LR range test (Smith, "A disciplined approach to neural network hyper-parameters: Part 1", arXiv 1803.09820,
§4.1; first in "Cyclical Learning Rates", arXiv 1506.01186): train for a few hundred steps while the learning rate
grows exponentially, lr_k = lr_min · (lr_max/lr_min)^{k/(K−1)}, record the exponentially smoothed loss
(bias-corrected, β = 0.98), stop once it exceeds 4× its minimum (divergence), and suggest the LR where the
smoothed loss falls fastest — the most negative slope d loss / d log lr — which sits below the divergence point
(Smith: "the learning rate where the loss decreases most steeply"). Our own code (a few lines; fastai's version is
tied to its Learner). The model and optimizer are thrown away afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, check


@dataclass
class LRFindResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed
    raw_losses: list[float] = field(default_factory=list)
    suggested_lr: float = math.nan
    min_loss_lr: float = math.nan
    diverged_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def lr_schedule(lr_min: float, lr_max: float, steps: int) -> list[float]:
    """Exponential ramp lr_k = lr_min·(lr_max/lr_min)^{k/(steps−1)}."""
    return [lr_min * (lr_max / lr_min) ** (k / max(1, steps - 1)) for k in range(steps)]


def smooth(losses: list[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average (as in Smith's and fastai's LR finders)."""
    out, avg = [], 0.0
    for k, x in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** k))
    return out


def suggest_lr(lrs: list[float], losses: list[float], skip_start: int = 3) -> float:
    """The LR at the most negative slope of the (smoothed) loss against log LR (central differences)."""
    check(len(lrs) == len(losses) and len(lrs) >= skip_start + 3, "lr-find curve", len(lrs),
          f"at least {skip_start + 3} points", "Fix: raise --steps or --lr-max (the loss diverged too early).")
    best, best_k = math.inf, skip_start + 1
    for k in range(skip_start + 1, len(lrs) - 1):
        slope = (losses[k + 1] - losses[k - 1]) / (math.log(lrs[k + 1]) - math.log(lrs[k - 1]))
        if slope < best:
            best, best_k = slope, k
    return lrs[best_k]


def lr_range_test(recipe: Any, lr_min: float = 1e-6, lr_max: float = 1.0, steps: int = 100,
                  diverge_factor: float = 4.0, beta: float = 0.98) -> LRFindResult:
    """Run the range test on a recipe's task, adapter and optimizer (its own lr is replaced by the ramp)."""
    import torch
    import torch.nn.functional as F

    from .train import build_run

    check(0 < lr_min < lr_max, "lr_min/lr_max", (lr_min, lr_max), "0 < lr_min < lr_max")
    check(isinstance(steps, int) and steps >= 10, "steps", steps, "an integer ≥ 10")
    task, model, opt, _ = build_run(recipe)
    if getattr(opt, "forward_passes_per_step", 0) or not isinstance(opt, torch.optim.Optimizer):
        raise ConfigError(f"lr-find needs a gradient optimizer, but {recipe.optimizer.name!r} is zeroth-order/closure "
                          "based. Fix: run lr-find with e.g. optimizer: sgd or adamw.")
    gen = torch.Generator().manual_seed(recipe.seed)
    bs = recipe.schedule.batch_size
    order = torch.randperm(task.n_train, generator=gen)
    out = LRFindResult()
    best = math.inf
    avg = 0.0
    model.train()
    for k, lr in enumerate(lr_schedule(lr_min, lr_max, steps)):
        start = (k * bs) % task.n_train
        if start + bs > task.n_train:
            order = torch.randperm(task.n_train, generator=gen)
        idx = order[start:start + bs] if start + bs <= task.n_train else order[:bs]
        for g in opt.param_groups:
            g["lr"] = lr
        batch = task.batch("train", idx)

        def closure(batch=batch):  # the standard closure: zero grads, forward, backward, return the loss
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(task.forward(model, batch), batch["labels"])
            loss.backward()
            return loss

        if getattr(opt, "needs_closure", False):  # e.g. SANIA, L-BFGS: the first evaluation's loss is recorded
            losses = []
            opt.step(lambda: losses.append(closure()) or losses[-1])
            loss = losses[0]
        else:
            loss = closure()
            opt.step((lambda: loss.detach()) if getattr(opt, "needs_loss", False) else None)
        x = float(loss.detach())
        avg = beta * avg + (1 - beta) * x
        s = avg / (1 - beta ** (k + 1))
        out.lrs.append(lr), out.raw_losses.append(x), out.losses.append(s)
        best = min(best, s)
        if not math.isfinite(x) or s > diverge_factor * best:
            out.diverged_at = lr
            break
    out.min_loss_lr = out.lrs[min(range(len(out.losses)), key=out.losses.__getitem__)]
    out.suggested_lr = suggest_lr(out.lrs, out.losses)
    return out


def plot(result: LRFindResult, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.raw_losses, color="0.8", lw=1, label="loss")
    ax.plot(result.lrs, result.losses, color="C0", label="smoothed loss")
    ax.axvline(result.suggested_lr, color="C3", ls="--", label=f"suggested lr = {result.suggested_lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("train loss")
    finite = [x for x in result.losses if math.isfinite(x)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.05)
    ax.set_title(title or "LR range test (Smith 2018)")
    ax.legend()
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
