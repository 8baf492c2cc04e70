"""One trial: sample a point, build its recipe, train it (with a heartbeat and the successive-halving stopper), and
tell Optuna COMPLETE / PRUNED / FAIL with the whole RunResult in the trial's user attrs."""
from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any, Callable

from ..engine.callbacks import Callback, TrainState
from ..engine.errors import LeanfitError
from ..engine.result import RunResult
from ..engine.store import trusted_result
from . import objectives as obj
from .config import GRID_PARAM, StudyConfig, _norm
from .space import SearchSpace
from .stopper import OptunaRungBoard, StopperConfig, TrialStopper


class Heartbeat(Callback):
    """Refresh the trial's ``heartbeat`` user attr every ``every_s`` seconds of training (for stale sweeps on
    other hosts)."""

    def __init__(self, trial: Any, every_s: float = 20.0):
        self.trial, self.every_s, self.last = trial, every_s, time.time()

    def after_step(self, state: TrainState) -> None:
        now = time.time()
        if now - self.last >= self.every_s:
            self.trial.set_user_attr("heartbeat", now)
            self.last = now


RunFn = Callable[..., RunResult]  # run_fn(recipe, callbacks=[...]) -> RunResult


def _default_run(recipe: Any, callbacks: Any = ()) -> RunResult:
    from ..engine.run import run_recipe

    return run_recipe(recipe, callbacks=callbacks)


def run_trial(study: Any, trial: Any, space: SearchSpace, cfg: StudyConfig, run_fn: RunFn | None = None,
              extra_callbacks: Any = ()) -> tuple[str, RunResult | None]:
    """Sample, train and tell one trial. Returns (state name, result).

    A point whose recipe this study already finished (or is training) is not trained again: the trial records
    ``duplicate_of`` and reuses that result (runs are deterministic for a seed; see ``claim``). Samplers over small
    categorical spaces (TPE, random) propose repeats often; this keeps them from paying twice."""
    from optuna.trial import TrialState

    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    trial.set_user_attr("heartbeat", time.time())
    try:
        if cfg.sampler == "grid":
            grid = space.grid()
            flat = grid[trial.suggest_categorical(GRID_PARAM, list(range(len(grid))))]
        else:
            flat = space.suggest(trial)
        trial.set_user_attr("params", _norm(flat))
        recipe = space.recipe(flat, cfg.task)
    except LeanfitError as e:
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=TrialState.FAIL)
        return "fail", None
    prev = claim(study, trial, recipe.id, cfg.stale_after_s) if cfg.reuse_duplicates else None
    if prev is not None:  # runs are deterministic for a seed: training it again would give the same metrics
        trial.set_user_attr("duplicate_of", prev.number)
        return _tell(study, trial, trusted_result(prev), cfg)
    if cfg.precheck and cfg.budgets:
        skipped = _skip_if_over_budget(study, trial, recipe, cfg)
        if skipped is not None:
            return skipped
    cbs: list[Callback] = [Heartbeat(trial), *extra_callbacks]
    if cfg.stopper is not None:
        cbs.append(TrialStopper(StopperConfig(**cfg.stopper), OptunaRungBoard(study, trial)))
    try:
        result = (run_fn or _default_run)(recipe, callbacks=cbs)
    except KeyboardInterrupt:  # Ctrl-C: FAIL without result or error = interrupted → retried on the next run
        trial.set_user_attr("fail_reason", "interrupted: KeyboardInterrupt")
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as e:  # a bug or bad point: stored as a failed trial with the error, never lost
        trial.set_user_attr("error", f"{type(e).__name__}: {e}")
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        study.tell(trial, state=TrialState.FAIL)
        return "fail", None
    return _tell(study, trial, result, cfg)


def _skip_if_over_budget(study: Any, trial: Any, recipe: Any, cfg: StudyConfig) -> tuple[str, RunResult] | None:
    """Tell FAIL without training when the recipe's estimate breaks a hard budget (see ``precheck``)."""
    from .precheck import SKIPPED_ATTR, over_budget

    try:
        checked = over_budget(recipe, cfg.budgets)
    except Exception as e:  # noqa: BLE001 - an estimate that cannot be made is no reason to skip: train and see
        trial.set_user_attr("precheck_error", f"{type(e).__name__}: {e}")
        return None
    if checked is None or not checked[1]:
        return None
    est, over = checked
    why = ", ".join(f"{n} {v:.4g} > {lim:.4g}" for n, (v, lim) in over.items())
    result = RunResult(recipe=recipe.to_dict(), recipe_id=recipe.id, task=str(recipe.task.name), status="failed",
                       costs={k: v for k, v in est.items() if k != "trainable_fraction"},
                       error=f"skipped before training: its estimate breaks the budget ({why})",
                       extra={SKIPPED_ATTR: {n: list(v) for n, v in over.items()}})
    trial.set_user_attr(SKIPPED_ATTR, why)
    state, result = _tell(study, trial, result, cfg)
    return "skipped", result


def claim(study: Any, trial: Any, recipe_id: str, stale_after_s: float = 600.0, poll_s: float = 1.0) -> Any:
    """Claim ``recipe_id`` for ``trial``; return a finished twin to reuse, or None when this trial should train.

    A twin is another trial of the study with the same recipe. A COMPLETE or PRUNED twin is reused (a PRUNED one
    as pruned). A RUNNING twin that claimed first is waited for, then reused, so two processes (workers, --join,
    two identical searches started at once) never train the same point. "First" is decided without a lock: each
    trial writes ``recipe_id``, then ``claimed_at`` (read from the clock after the first write), then looks. If B
    did not see A's ``recipe_id``, A's clock read came after B's look, so A sees B's earlier ``claimed_at`` and
    waits; a twin whose ``claimed_at`` is not written yet is waited for until it is. A twin whose worker is gone
    (``stale_reason``) is not waited for."""
    from optuna.trial import TrialState

    from .queue import stale_reason

    trial.set_user_attr("recipe_id", recipe_id)
    mine = (time.time(), trial.number)
    trial.set_user_attr("claimed_at", mine[0])
    beat = mine[0]
    while True:
        twins = [t for t in study.get_trials(deepcopy=False)
                 if t.number != trial.number and t.user_attrs.get("recipe_id") == recipe_id]
        done = [t for t in twins if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "result" in t.user_attrs]
        if done:
            return done[0]
        ahead = [t for t in twins if t.state == TrialState.RUNNING and stale_reason(t, stale_after_s) is None
                 and (t.user_attrs.get("claimed_at", float("-inf")), t.number) < mine]
        if not ahead:
            return None
        if time.time() - beat > 20:  # stay alive for other hosts' stale sweeps while waiting
            beat = time.time()
            trial.set_user_attr("heartbeat", beat)
        time.sleep(poll_s)


def _tell(study: Any, trial: Any, result: RunResult, cfg: StudyConfig) -> tuple[str, RunResult]:
    from optuna.trial import TrialState

    from ..engine.store import write_result

    write_result(trial, result)
    if cfg.budgets:  # hard budgets: feasible when every value ≤ 0 (read by TPE / NSGA-II)
        cons = obj.constraint_values(result, cfg.budgets)
        trial.set_user_attr(obj.CONSTRAINT_ATTR, cons)
        if hasattr(trial, "set_constraint"):
            for name, c in zip(cfg.budgets, cons):
                trial.set_constraint(name, c)
    if result.status == "complete":
        study.tell(trial, obj.objective_values(result, cfg.objectives))
        return "complete", result
    if result.status == "pruned":  # partial curve is in the "result" attr; never COMPLETE
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned", result
    study.tell(trial, state=TrialState.FAIL)
    return "fail", result
