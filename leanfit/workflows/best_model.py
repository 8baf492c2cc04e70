"""``leanfit search --save-best DIR``: the study's best finished trial as a model folder.

"Best" is chosen on validation only: the complete, within-budget trial with the best first objective (ties broken
by the next objectives). Trials store results, not weights, so its recipe is trained again; runs are deterministic
for a seed (tested), and the retrained run's validation metrics are compared with the stored ones and a difference
is reported, never hidden.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..engine.errors import ConfigError
from ..engine.result import RunResult
from ..study.objectives import MAXIMIZE, constraint_values, value


def best_trial(results: Sequence[RunResult], objectives: Sequence[str], budgets: dict[str, float] | None = None
               ) -> RunResult:
    """The complete, feasible result with the best objectives in order (validation metrics; ↑ or ↓ by name)."""
    ok = [r for r in results if r.status == "complete"
          and not (budgets and any(c > 0 for c in constraint_values(r, budgets)))]
    if not ok:
        raise ConfigError("--save-best: the study has no complete trial within its budgets. Fix: run more trials "
                          "or relax the budgets.")

    def key(r: RunResult) -> tuple[float, ...]:
        vals = [value(r, o) for o in objectives]
        return tuple((-v if o in MAXIMIZE else v) if not math.isnan(v) else math.inf for o, v in zip(objectives, vals))

    return min(ok, key=key)


def save_best(results: Sequence[RunResult], objectives: Sequence[str], folder: str | Path,
              budgets: dict[str, float] | None = None) -> tuple[RunResult, RunResult, Path]:
    """(the chosen stored trial, its retrained run, the saved folder)."""
    from ..engine.recipe import Recipe
    from ..engine.run import train_recipe
    from .model_io import save

    best = best_trial(results, objectives, budgets)
    result, run = train_recipe(Recipe.from_dict(best.recipe))
    if result.status != "complete":
        raise ConfigError(f"--save-best: retraining recipe {best.recipe_id} ended {result.status} ({result.error}).")
    out = save(folder, run.model, run.task, result, run.adapter, result.recipe)
    return best, result, out


def describe_difference(stored: RunResult, again: RunResult) -> str | None:
    """A note when the retrained run's validation metrics differ from the stored trial's (they should not)."""
    diff: dict[str, Any] = {k: (v, again.metrics.get(k)) for k, v in stored.metrics.items()
                            if again.metrics.get(k) is not None and abs(float(v) - float(again.metrics[k])) > 1e-9}
    return None if not diff else f"retrained metrics differ from the stored trial's: {diff}"
