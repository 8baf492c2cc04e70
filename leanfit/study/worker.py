"""A worker: take WAITING trials from the shared storage until none is left (or the deadline passed)."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from ..engine.result import RunResult
from . import objectives as obj
from .config import StudyConfig, make_sampler, open_study, trial_seed
from .space import SearchSpace
from .trial import RunFn, run_trial


def drain(storage: Any, study_name: str, cfg: StudyConfig | Mapping[str, Any], worker: int = 0,
          run_fn: RunFn | None = None, log: Callable[[str], None] | None = print) -> int:
    """Worker loop: take WAITING trials until none is left (or the deadline passed). Returns trials run.

    Uses Optuna's ``Study._pop_waiting_trial_id`` (the atomic WAITING→RUNNING hand-over that ``Study.ask`` uses)
    so that a worker never creates a trial of its own."""
    import optuna

    from ..engine.store import open_storage

    if isinstance(cfg, Mapping):
        cfg = StudyConfig(**cfg)
    space = SearchSpace.from_dict(cfg.space, validate=False)
    storage = open_storage(storage)
    study = open_study(storage, study_name, cfg, create=False)
    n = 0
    while cfg.deadline is None or time.time() < cfg.deadline:
        study._thread_local.cached_all_trials = None
        tid = study._pop_waiting_trial_id()
        if tid is None:
            break
        seed = trial_seed(cfg.seed, study._storage.get_trial_number_from_id(tid))
        study.sampler = make_sampler(cfg, space, seed)  # its own stream: see trial_seed
        trial = optuna.trial.Trial(study, tid)
        trial.set_user_attr("sampler_seed", seed)
        state, result = run_trial(study, trial, space, cfg, run_fn)
        n += 1
        if log:
            log(_line(trial.number, state, result, cfg, worker))
    return n


def _line(number: int, state: str, result: RunResult | None, cfg: StudyConfig, worker: int) -> str:
    from ..report.table import human

    if result is None:
        return f"[w{worker}] trial {number}: {state}"
    if state == "skipped":
        return f"[w{worker}] trial {number}: skipped  {result.label:28s} {result.error}"
    vals = ", ".join(f"{o} {100 * v:.1f}%" if o == "accuracy" else f"{o} {human(v)}"
                     for o, v in zip(cfg.objectives, obj.objective_values(result, cfg.objectives)))
    return f"[w{worker}] trial {number}: {state:8s} {result.label:28s} {vals}"
