"""Run a study: a search space, objectives, budgets and a sampler over a shared Optuna storage.

How trials are handed out — exactly N, no duplicates, no losses, resumable:

1. The coordinator (``run_study``) first *sweeps* stale RUNNING trials (their worker process is gone on this host,
   or their heartbeat is older than ``stale_after_s``) to FAIL, then *tops up* the queue: it enqueues retries of
   interrupted trials (same parameters, user attr ``retry_of``) and fresh empty WAITING trials until
   ``done + running + waiting == N``. Finished trials are never touched, so they are never re-run (queue.py).
2. Workers (this process, K local processes, or K Ray tasks; executors.py) *drain* the queue: each atomically
   moves one WAITING trial to RUNNING (Optuna's compare-and-set in the storage), samples its parameters with the
   study's sampler, trains, and tells COMPLETE / PRUNED / FAIL (trial.py). A worker never creates a trial, so K
   workers give exactly N.

"done" = COMPLETE, PRUNED, or FAIL with a stored result or error (a NaN run, a bad point); an *interrupted* trial
is FAIL without either, and is retried once per interruption.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..engine.errors import ConfigError, UnknownNameError, check
from ..engine.result import RunResult
from ..engine.store import storage_url
from .config import EXECUTORS, StudyConfig, open_study
from .queue import sweep_stale, top_up
from .space import SearchSpace
from .trial import RunFn
from .worker import drain


@dataclass
class StudySummary:
    study_name: str
    storage: str
    swept: list[int]
    retried: list[int]
    enqueued: int
    ran: int
    counts: dict[str, int]
    skipped: int = 0  # FAIL trials skipped before training: their estimate broke a hard budget


def run_study(cfg: StudyConfig, storage: str, study_name: str, executor: str = "local", workers: int = 1,
              join: bool = False, stale_after_s: float = 600.0, run_fn: RunFn | None = None,
              log: Callable[[str], None] | None = print) -> StudySummary:
    """Sweep, top up, then drain the study with ``workers`` local processes or Ray tasks."""
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, EXECUTORS)
    check(isinstance(workers, int) and workers >= 1, "workers", workers, "an integer ≥ 1")
    storage = storage_url(storage)
    if (workers > 1 or executor == "ray") and ("memory" in storage or storage.endswith(":")):
        raise ConfigError(f"storage {storage!r} cannot be shared by several workers. Fix: use a sqlite/journal/"
                          "postgresql URL.")
    cfg.parallel = workers > 1 or executor == "ray"
    cfg.stale_after_s = stale_after_s
    space = SearchSpace.from_dict(cfg.space)  # validate every name/range before any trial
    space.recipe(space.grid()[0] if cfg.sampler == "grid" else _first_point(space), cfg.task)
    study = open_study(storage, study_name, cfg, create=not join)  # --join: the study must exist
    swept, retried, enq = [], [], 0
    if not join:
        swept = sweep_stale(study, stale_after_s)
        retried, enq = top_up(study, cfg.n_trials, len(space.grid()) if cfg.sampler == "grid" else None)
    if log and (swept or retried):
        log(f"resume: marked interrupted trials {swept or 'none'} FAIL; retrying {retried or 'none'}")
    ran = 0
    if executor == "ray":
        from .executors import run_ray

        ran = run_ray(storage, study_name, cfg.to_dict(), workers)
    elif workers == 1:
        ran = drain(storage, study_name, cfg, 0, run_fn, log)
    else:
        from .executors import run_processes

        run_processes(storage, study_name, cfg.to_dict(), workers)
    from .precheck import SKIPPED_ATTR

    counts: dict[str, int] = {}
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    skipped = sum(SKIPPED_ATTR in t.user_attrs for t in trials)
    return StudySummary(study_name, storage, swept, retried, enq, ran, counts, skipped)


def _first_point(space: SearchSpace) -> dict[str, Any]:
    return space.suggest(_LowTrial())


class _LowTrial:
    """A stand-in trial that picks the first choice / low end everywhere (to validate the recipe path)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return low

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return low


def study_results(storage: Any, study_name: str) -> list[RunResult]:
    from ..engine.store import load_runs

    return load_runs(storage, study_name)
