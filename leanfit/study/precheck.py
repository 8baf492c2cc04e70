"""Skip, before training, a trial whose estimate already breaks a hard budget (issue 15).

The estimate (``engine/estimate.py``) meters one real step of the recipe's own model and optimizer, so parameter
counts, optimizer state and train memory equal the run's meters exactly; train FLOPs too when batch shapes are
fixed (with dynamic padding they are scaled from one batch and are not used to skip). Only budgets on those
quantities are checked here: accuracy and wall time are only known by training. A skipped trial is told FAIL with a
``failed`` RunResult whose error says which budget its estimate broke, so it is never retried and is counted apart.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..engine.recipe import Recipe

ESTIMABLE = ("trainable_params", "total_params", "trainable_fraction", "optimizer_state_bytes",
             "train_memory_bytes", "train_flops")
SKIPPED_ATTR = "skipped_by_estimate"


def estimated_costs(recipe: Recipe, task: Any = None) -> dict[str, float]:
    """The estimable costs of ``recipe`` from one metered step."""
    from ..engine.estimate import estimate

    e = estimate(recipe, timed_steps=1, task=task)
    out = {"trainable_params": e.trainable_params, "total_params": e.total_params,
           "trainable_fraction": e.trainable_params / max(e.total_params, 1),
           "optimizer_state_bytes": e.optimizer_state_bytes, "train_memory_bytes": e.train_memory_bytes}
    if not any("scaled" in n for n in e.notes):  # exact only for fixed batch shapes
        out["train_flops"] = e.train_flops
    return out


def over_budget(recipe: Recipe, budgets: Mapping[str, float], task: Any = None
                ) -> tuple[dict[str, float], dict[str, tuple[float, float]]] | None:
    """(estimated costs, {budget: (estimate, limit)} broken) — or None when no budget is estimable."""
    if not any(n in ESTIMABLE for n in budgets):
        return None
    est = estimated_costs(recipe, task)
    return est, {n: (est[n], float(lim)) for n, lim in budgets.items() if n in est and est[n] > lim}
