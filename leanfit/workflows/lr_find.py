"""LR range test (Smith, "A disciplined approach to neural network hyper-parameters: Part 1", arXiv 1803.09820,
§4.1; first in "Cyclical Learning Rates", arXiv 1506.01186): train for a few hundred steps while the learning rate
grows exponentially, lr_k = lr_min · (lr_max/lr_min)^{k/(K−1)}, record the exponentially smoothed loss
(bias-corrected, β = 0.98), stop once it exceeds 4× its minimum (divergence), and suggest the LR where the
smoothed loss falls fastest — the most negative slope d loss / d log lr — which sits below the divergence point
(Smith: "the learning rate where the loss decreases most steeply"). Our own code (a few lines; fastai's version is
tied to its Learner). The ramp runs through the Trainer (a callback sets the LR before each step and reads the
loss after it), so every optimizer step protocol works; the model and optimizer are thrown away afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.callbacks import Callback, TrainState
from ..engine.errors import ConfigError, check


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


class _Ramp(Callback):
    """Sets the k-th LR of the ramp before step k, records the loss after it, and stops at divergence."""

    def __init__(self, lrs: list[float], diverge_factor: float, beta: float):
        self.lrs, self.diverge_factor, self.beta = lrs, diverge_factor, beta
        self.out, self.best, self.avg = LRFindResult(), math.inf, 0.0

    def before_step(self, state: TrainState) -> None:
        for g in state.optimizer.param_groups:
            g["lr"] = self.lrs[state.step]

    def after_step(self, state: TrainState) -> None:
        k, x = state.step - 1, float(state.loss)
        self.avg = self.beta * self.avg + (1 - self.beta) * x
        s = self.avg / (1 - self.beta ** (k + 1))
        self.out.lrs.append(self.lrs[k]), self.out.raw_losses.append(x), self.out.losses.append(s)
        self.best = min(self.best, s)
        if not math.isfinite(x) or s > self.diverge_factor * self.best:
            self.out.diverged_at = self.lrs[k]
            state.stop(f"lr-find: loss diverged at lr={self.lrs[k]:.3g}")


def lr_range_test(recipe: Any, lr_min: float = 1e-6, lr_max: float = 1.0, steps: int = 100,
                  diverge_factor: float = 4.0, beta: float = 0.98) -> LRFindResult:
    """Run the range test on a recipe's task, adapter and optimizer (its own lr is replaced by the ramp)."""
    import torch

    from ..engine.errors import NonFiniteLossError
    from ..engine.recipe import Schedule
    from ..engine.run import build_run
    from ..engine.trainer import Trainer

    check(0 < lr_min < lr_max, "lr_min/lr_max", (lr_min, lr_max), "0 < lr_min < lr_max")
    check(isinstance(steps, int) and steps >= 10, "steps", steps, "an integer ≥ 10")
    run = build_run(recipe)
    opt = run.optimizer
    if getattr(opt, "forward_passes_per_step", 0) or not isinstance(opt, torch.optim.Optimizer):
        raise ConfigError(f"lr-find needs a gradient optimizer, but {recipe.optimizer.name!r} is zeroth-order/closure "
                          "based. Fix: run lr-find with e.g. optimizer: sgd or adamw.")
    bs = recipe.schedule.batch_size
    ramp = _Ramp(lr_schedule(lr_min, lr_max, steps), diverge_factor, beta)
    schedule = Schedule(epochs=math.ceil(steps * bs / run.task.n_train), batch_size=bs, max_steps=steps)
    try:
        Trainer(run.task, run.model, opt, schedule, [ramp], recipe.seed, evaluate=False).fit()
    except NonFiniteLossError:  # the ramp went past the point of no return: the curve so far is the answer
        ramp.out.diverged_at = ramp.out.diverged_at or ramp.lrs[len(ramp.out.lrs)]
    out = ramp.out
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
