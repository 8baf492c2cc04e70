"""Run a study: a search space, objectives, budgets and a sampler over a shared Optuna storage.

How trials are handed out — exactly N, no duplicates, no losses, resumable:

1. The coordinator (``run_study``) first *sweeps* stale RUNNING trials (their worker process is gone on this host,
   or their heartbeat is older than ``stale_after_s``) to FAIL, then *tops up* the queue: it enqueues retries of
   interrupted trials (same parameters, user attr ``retry_of``) and fresh empty WAITING trials until
   ``done + running + waiting == N``. Finished trials are never touched, so they are never re-run.
2. Workers (this process, K local processes, or K Ray tasks) *drain* the queue: each atomically moves one WAITING
   trial to RUNNING (Optuna's compare-and-set in the storage), samples its parameters with the study's sampler,
   trains, and tells COMPLETE / PRUNED / FAIL. A worker never creates a trial, so K workers give exactly N.

"done" = COMPLETE, PRUNED, or FAIL with a stored result or error (a NaN run, a bad point); an *interrupted* trial
is FAIL without either, and is retried once per interruption.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from ..callbacks import Callback, TrainState
from ..errors import ConfigError, LeanfitError, UnknownNameError, check
from ..result import RunResult
from . import objectives as obj
from .space import SearchSpace
from .stopper import OptunaRungBoard, StopperConfig, TrialStopper

SAMPLERS = ("tpe", "nsga2", "random", "grid")
EXECUTORS = ("local", "ray")
CONFIG_ATTR = "leanfit_study"
GRID_PARAM = "grid_id"


@dataclass
class StudyConfig:
    """Everything a worker needs to run trials of one study (plain data: crosses process and Ray boundaries)."""

    space: dict[str, Any]
    task: Any = None
    objectives: tuple[str, ...] = ("accuracy", "train_flops")
    budgets: dict[str, float] = field(default_factory=dict)
    sampler: str = "tpe"
    seed: int = 0
    stopper: dict[str, Any] | None = field(default_factory=dict)  # StopperConfig kwargs; None = no stopping
    n_trials: int = 20
    deadline: float | None = None  # epoch seconds after which workers take no new trial
    parallel: bool = False
    reuse_duplicates: bool = True  # a recipe already completed in this study is not trained again (see run_trial)

    def __post_init__(self) -> None:
        self.objectives = obj.parse_objectives(self.objectives)
        self.budgets = obj.parse_budgets(self.budgets)
        if self.sampler not in SAMPLERS:
            raise UnknownNameError("sampler", self.sampler, SAMPLERS)
        check(isinstance(self.n_trials, int) and self.n_trials >= 1, "trials", self.n_trials, "an integer ≥ 1")
        if self.stopper is not None:
            StopperConfig(**self.stopper)  # validate now, in the coordinator
        self.task = self.task or self.space.get("task")
        if self.task is None:
            raise ConfigError("no task: the search space has no 'task' key and none was given. "
                              "Fix: pass --task digits-mlp (see `leanfit list tasks`).")

    @classmethod
    def from_space(cls, space: Mapping[str, Any], **overrides: Any) -> "StudyConfig":
        """Study settings from the space file's own keys (objectives, budgets, sampler, stopper, trials), with
        explicit (non-None) overrides winning; ``stopper=None`` turns successive halving off."""
        d: dict[str, Any] = {"space": dict(space)}
        for k, dst in (("objectives", "objectives"), ("budgets", "budgets"), ("sampler", "sampler"),
                       ("stopper", "stopper"), ("trials", "n_trials")):
            if space.get(k) is not None:
                d[dst] = space[k]
        d.update({k: v for k, v in overrides.items() if v is not None or k == "stopper"})  # stopper=None: off
        return cls(**d)

    def identity(self) -> dict[str, Any]:
        """What must not change when a study is resumed (the sampler, stopper and N may)."""
        return {"space": {k: v for k, v in self.space.items() if k not in ("trials", "sampler", "stopper", "study")},
                "task": self.task, "objectives": list(self.objectives), "budgets": self.budgets}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        return d


def storage_url(url: str | None) -> str:
    """``postgresql://`` → ``postgresql+psycopg2://`` when only psycopg2 is installed (SQLAlchemy ≥ 2.1 defaults
    to the psycopg 3 driver); every other URL unchanged."""
    from ..store import DEFAULT_STORAGE

    url = url or DEFAULT_STORAGE
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def default_study_name(space_path: str, task: Any) -> str:
    from pathlib import Path

    t = task if isinstance(task, str) else (task or {}).get("name", "task")
    return f"{Path(space_path).stem}-{t}".replace(":", "-")


# ---- storage, study and sampler -------------------------------------------------------------------------------
def open_study(storage: Any, name: str, cfg: StudyConfig, create: bool = True, sampler: Any = None) -> Any:
    import optuna

    from ..store import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage) if storage is None or isinstance(storage, str) else storage
    dirs = obj.directions(cfg.objectives)
    if create:
        study = optuna.create_study(study_name=name, storage=storage, directions=dirs, load_if_exists=True,
                                    sampler=sampler)
    else:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    have = study.user_attrs.get(CONFIG_ATTR)
    if have is None:
        if [d.name.lower() for d in study.directions] != dirs:
            raise ConfigError(f"study {name!r} already exists with directions "
                              f"{[d.name.lower() for d in study.directions]}, not {dirs}. Fix: use another --study.")
        study.set_user_attr(CONFIG_ATTR, cfg.identity())
    else:
        mine = cfg.identity()
        diff = sorted(k for k in mine if _norm(mine[k]) != _norm(have.get(k)))
        if diff:
            raise ConfigError(f"study {name!r} already exists with a different {', '.join(diff)}; resuming it would "
                              f"mix two searches. Fix: rerun with the same space/task/objectives/budgets, or pass "
                              f"a new --study name.")
    return study


def _norm(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x, sort_keys=True, default=str))


def make_sampler(cfg: StudyConfig, space: SearchSpace, worker: int = 0) -> Any:
    import warnings

    import optuna

    seed = cfg.seed + 7919 * worker  # different streams per worker, reproducible per worker
    import optuna.trial

    # Optuna ≥ 5 reads constraints set with Trial.set_constraint; older versions need constraints_func.
    cons = obj.constraints_func if cfg.budgets and not hasattr(optuna.trial.Trial, "set_constraint") else None
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constraints_func=cons,
                                          constant_liar=cfg.parallel,
                                          n_startup_trials=min(10, max(2, cfg.n_trials // 4)))
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cons,
                                             population_size=max(4, min(50, cfg.n_trials // 3)))
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler({GRID_PARAM: list(range(len(space.grid())))}, seed=seed)


# ---- resume: stale sweep and queue top-up ----------------------------------------------------------------------
def _alive(pid: int) -> bool:
    import psutil

    if pid == os.getpid():  # a restarted container can reuse our pid; we run no trial yet
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sweep_stale(study: Any, stale_after_s: float = 600.0) -> list[int]:
    """Mark RUNNING trials whose worker is gone FAIL (same host: the pid is dead; any host: heartbeat older than
    ``stale_after_s``). Returns their numbers."""
    from optuna.trial import TrialState

    host, now, out = socket.gethostname(), time.time(), []
    st = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        beat = t.user_attrs.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else now)
        if w.get("host") == host and not _alive(int(w.get("pid", -1))):
            why = f"interrupted: worker pid {w.get('pid')} on {host} is gone"
        elif now - beat > stale_after_s:
            why = f"interrupted: no heartbeat for {now - beat:.0f} s (> {stale_after_s:.0f} s)"
        else:
            continue
        st.set_trial_user_attr(t._trial_id, "fail_reason", why)
        st.set_trial_state_values(t._trial_id, TrialState.FAIL)
        out.append(t.number)
    return out


def is_done(t: Any) -> bool:
    from optuna.trial import TrialState

    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and ("result" in t.user_attrs or "error" in t.user_attrs))


def top_up(study: Any, n_trials: int, grid_size: int | None = None) -> tuple[list[int], int]:
    """Enqueue retries of interrupted trials, then fresh trials, until done + running + waiting == n_trials.
    With a grid (``grid_size`` points), fresh trials get the next unused ``grid_id`` (in order; repeats only
    once every point was used). Returns (numbers retried, fresh trials enqueued)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    done = sum(is_done(t) for t in trials)
    pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    interrupted = [t for t in trials if t.state == TrialState.FAIL and not is_done(t) and t.number not in retried]
    need = n_trials - done - pending
    again = []
    for t in interrupted[:max(need, 0)]:
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        again.append(t.number)
    fresh = max(need - len(again), 0)
    used = [(t.system_attrs.get("fixed_params") or t.params).get(GRID_PARAM) for t in trials]
    for i in range(fresh):
        if grid_size:
            free = [g for g in range(grid_size) if g not in used] or list(range(grid_size))
            used.append(free[0])
            study.enqueue_trial({GRID_PARAM: free[0]})
        else:
            study.enqueue_trial({})
    return again, fresh


# ---- one trial -------------------------------------------------------------------------------------------------
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
    from ..train import run_recipe

    return run_recipe(recipe, callbacks=callbacks)


def run_trial(study: Any, trial: Any, space: SearchSpace, cfg: StudyConfig, run_fn: RunFn | None = None,
              extra_callbacks: Any = ()) -> tuple[str, RunResult | None]:
    """Sample, train and tell one trial. Returns (state name, result).

    A point whose recipe this study already completed is not trained again: the trial records
    ``duplicate_of`` and reuses that result (runs are deterministic for a seed). Samplers over small categorical
    spaces (TPE, random) propose repeats often; this keeps them from paying twice."""
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
    prev = _completed_twin(study, recipe.id) if cfg.reuse_duplicates else None
    if prev is not None:  # runs are deterministic for a seed: training it again would give the same metrics
        trial.set_user_attr("duplicate_of", prev.number)
        result = RunResult.from_dict(prev.user_attrs["result"])
        return _tell(study, trial, result, cfg)
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


def _completed_twin(study: Any, recipe_id: str) -> Any:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("recipe_id") == recipe_id and "result" in t.user_attrs:
            return t
    return None


def _tell(study: Any, trial: Any, result: RunResult, cfg: StudyConfig) -> tuple[str, RunResult]:
    from optuna.trial import TrialState

    from ..store import write_result

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


def drain(storage: Any, study_name: str, cfg: StudyConfig | Mapping[str, Any], worker: int = 0,
          run_fn: RunFn | None = None, log: Callable[[str], None] | None = print) -> int:
    """Worker loop: take WAITING trials until none is left (or the deadline passed). Returns trials run.

    Uses Optuna's ``Study._pop_waiting_trial_id`` (the atomic WAITING→RUNNING hand-over that ``Study.ask`` uses)
    so that a worker never creates a trial of its own."""
    import optuna

    from ..store import open_storage

    if isinstance(cfg, Mapping):
        cfg = StudyConfig(**cfg)
    space = SearchSpace.from_dict(cfg.space, validate=False)
    storage = open_storage(storage) if storage is None or isinstance(storage, str) else storage
    study = open_study(storage, study_name, cfg, create=False, sampler=make_sampler(cfg, space, worker))
    n = 0
    while cfg.deadline is None or time.time() < cfg.deadline:
        study._thread_local.cached_all_trials = None
        tid = study._pop_waiting_trial_id()
        if tid is None:
            break
        trial = optuna.trial.Trial(study, tid)
        state, result = run_trial(study, trial, space, cfg, run_fn)
        n += 1
        if log:
            log(_line(trial.number, state, result, cfg, worker))
    return n


def _line(number: int, state: str, result: RunResult | None, cfg: StudyConfig, worker: int) -> str:
    from ..report.table import human

    if result is None:
        return f"[w{worker}] trial {number}: {state}"
    vals = ", ".join(f"{o} {100 * v:.1f}%" if o == "accuracy" else f"{o} {human(v)}"
                     for o, v in zip(cfg.objectives, obj.objective_values(result, cfg.objectives)))
    return f"[w{worker}] trial {number}: {state:8s} {result.label:28s} {vals}"


def _drain_entry(storage: str, study_name: str, cfg: dict[str, Any], worker: int) -> None:
    import torch

    torch.set_num_threads(1)  # K workers share the cores
    drain(storage, study_name, cfg, worker)


# ---- the coordinator -------------------------------------------------------------------------------------------
@dataclass
class StudySummary:
    study_name: str
    storage: str
    swept: list[int]
    retried: list[int]
    enqueued: int
    ran: int
    counts: dict[str, int]


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
    space = SearchSpace.from_dict(cfg.space)  # validate every name/range before any trial
    space.recipe(space.grid()[0] if cfg.sampler == "grid" else _first_point(space), cfg.task)
    study = open_study(storage, study_name, cfg, create=True)
    swept, retried, enq = [], [], 0
    if not join:
        swept = sweep_stale(study, stale_after_s)
        retried, enq = top_up(study, cfg.n_trials, len(space.grid()) if cfg.sampler == "grid" else None)
    if log and (swept or retried):
        log(f"resume: marked interrupted trials {swept or 'none'} FAIL; retrying {retried or 'none'}")
    ran = 0
    if executor == "ray":
        from .ray_executor import run_ray

        ran = run_ray(storage, study_name, cfg.to_dict(), workers)
    elif workers == 1:
        ran = drain(storage, study_name, cfg, 0, run_fn, log)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_drain_entry, args=(storage, study_name, cfg.to_dict(), i)) for i in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:
            raise LeanfitError(f"{len(bad)} of {workers} worker processes exited with codes {bad}; rerun the same "
                               "command to resume (their trials will be retried).")
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return StudySummary(study_name, storage, swept, retried, enq, ran, counts)


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
    from ..store import load_runs

    return load_runs(storage, study_name)
