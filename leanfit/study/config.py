"""A study's settings (``StudyConfig``: plain data that crosses process and Ray boundaries), opening or resuming
its Optuna study with a check that the search is the same one, and the sampler factory."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..engine.errors import ConfigError, UnknownNameError, check
from . import objectives as obj
from .space import SearchSpace
from .stopper import StopperConfig

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
    stale_after_s: float = 600.0  # another host's RUNNING trial without a heartbeat this long is interrupted
    precheck: bool = True  # skip, before training, a point whose estimate breaks a hard budget (study/precheck.py)

    def __post_init__(self) -> None:
        self.objectives = obj.parse_objectives(self.objectives)
        self.budgets = obj.parse_budgets(self.budgets)
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise UnknownNameError("sampler", str(self.sampler), SAMPLERS)
        check(type(self.n_trials) is int and self.n_trials >= 1, "trials", self.n_trials, "an integer ≥ 1")
        check(type(self.seed) is int and self.seed >= 0, "seed", self.seed, "an integer ≥ 0")
        if self.stopper is not None:
            StopperConfig.from_dict(self.stopper)  # validate now, in the coordinator
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


def default_study_name(space_path: str, task: Any) -> str:
    from pathlib import Path

    t = task if isinstance(task, str) else (task or {}).get("name", "task")
    return f"{Path(space_path).stem}-{t}".replace(":", "-")


def open_study(storage: Any, name: str, cfg: StudyConfig, create: bool = True, sampler: Any = None) -> Any:
    import optuna

    from ..engine.store import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage)
    dirs = obj.directions(cfg.objectives)
    if create:
        study = optuna.create_study(study_name=name, storage=storage, directions=dirs, load_if_exists=True,
                                    sampler=sampler)
    else:  # --join / workers: the study must exist (joining a typo must not create an empty study)
        have = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        if not have:
            raise ConfigError(f"study {name!r} does not exist: the storage has no studies yet. Fix: start the "
                              "search without --join first (it creates the study and its queue).")
        if name not in have:
            raise UnknownNameError("study", name, have)
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
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def trial_seed(seed: int, trial_number: int) -> int:
    """The sampler seed of one trial: the study's ``--seed`` mixed with the trial's number. Trial numbers are
    unique in a study, so workers, ``--join`` processes, two identical searches started at once and a resumed
    search after a kill each draw from their own stream (a seed per process or worker repeated the interrupted
    trial's point after a restart), while the same study replays the same seeds."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{trial_number}".encode()).digest()[:4], "little")


def make_sampler(cfg: StudyConfig, space: SearchSpace, seed: int | None = None) -> Any:
    """The study's sampler with ``seed`` (default ``cfg.seed``); workers make one per trial (``trial_seed``)."""
    import warnings

    import optuna
    import optuna.trial

    seed = cfg.seed if seed is None else seed

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
