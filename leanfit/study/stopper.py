"""TrialStopper: asynchronous successive halving (ASHA) as a Trainer callback, for multi-objective studies.

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (ASHA, arXiv 1810.05934), Algorithm 2, on top of
Jamieson & Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter Optimization" (successive
halving, arXiv 1502.07943). Rung k sits at resource ``r_k = r_0 · η^k`` (train samples or train FLOPs). When a
trial's resource first reaches ``r_k`` it records its metric there; it continues only if that value is among the
top ``⌊n_k / η⌋`` (at least the best one) of the ``n_k`` values recorded at rung k so far by all trials, itself
included, and at least ``min_trials`` values exist there (before that, every trial continues).

Why our own: Optuna's pruners only work for single-objective studies, and a pruned trial must be told PRUNED with
its partial learning curve — never COMPLETE (what a run that "finished early" looks like in some Ray/Optuna
integrations). Here the stopper calls ``state.stop(reason, pruned=True)``; the run's status is then "pruned" and
the study tells the trial PRUNED with the partial RunResult in its user attrs.

Name clash to avoid (STYLE rule 11): this stops *trials*; weight *pruning* is the compress axis.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from ..engine.callbacks import Callback, TrainState
from ..engine.errors import check, check_keys

RESOURCES = ("samples", "flops")
LOWER_IS_BETTER = ("eval_loss", "perplexity")
METRICS = ("accuracy", "macro_f1", "token_accuracy", *LOWER_IS_BETTER)


@dataclass(frozen=True)
class StopperConfig:
    resource: str = "samples"  # what rungs are measured in: train samples seen, or train FLOPs
    min_resource: float | None = None  # r_0; None = the resource at a trial's first eval (shared study-wide)
    reduction_factor: int = 3  # η
    min_trials: int = 3  # values needed at a rung before it stops anyone
    metric: str = "accuracy"  # a validation metric: accuracy / macro_f1 / token_accuracy ↑, eval_loss / perplexity ↓

    @classmethod
    def from_dict(cls, d: Any) -> "StopperConfig":
        """From a space file's ``stopper:`` mapping (null: the defaults), every key and value checked."""
        d = {} if d is None else d
        check(isinstance(d, Mapping), "stopper", d, "a mapping of successive-halving settings",
              "Fix: e.g. stopper: {resource: samples, reduction_factor: 3}.")
        check_keys(d, [f.name for f in dataclasses.fields(cls)], "stopper")
        return cls(**d)

    def __post_init__(self) -> None:
        check(self.resource in RESOURCES, "stopper.resource", self.resource, f"one of {RESOURCES}")
        check(self.metric in METRICS, "stopper.metric", self.metric, f"one of {METRICS}",
              "Fix: eval_loss suits language models, whose exact-match accuracy is often 0 early in training.")
        check(self.min_resource is None or (isinstance(self.min_resource, (int, float))
                                            and not isinstance(self.min_resource, bool) and self.min_resource > 0),
              "stopper.min_resource", self.min_resource, "a number > 0 or null (auto)")
        check(type(self.reduction_factor) is int and self.reduction_factor >= 2, "stopper.reduction_factor",
              self.reduction_factor, "an integer ≥ 2")
        check(type(self.min_trials) is int and self.min_trials >= 1, "stopper.min_trials", self.min_trials,
              "an integer ≥ 1")


def rung_of(resource: float, min_resource: float, eta: int) -> int:
    """Highest rung k with r_0·η^k ≤ resource (-1 before the first rung)."""
    if resource < min_resource:
        return -1
    k = int(math.floor(math.log(resource / min_resource) / math.log(eta) + 1e-9))
    return max(k, 0)


def promotable(value: float, rung_values: Sequence[float], eta: int, min_trials: int = 1) -> bool:
    """ASHA's rule: keep a trial whose value (already in ``rung_values``) is in the top ⌊n/η⌋ (≥ 1) of its
    rung."""
    n = len(rung_values)
    if n < min_trials:
        return True
    k = max(1, n // eta)
    kth_best = sorted(rung_values, reverse=True)[k - 1]
    return value >= kth_best


class RungBoard(Protocol):
    """Where rung values live: in the study storage (shared by all workers) or in memory (tests, replays)."""

    def report(self, rung: int, value: float) -> None: ...
    def values(self, rung: int) -> list[float]: ...
    def min_resource(self, proposed: float) -> float: ...


class MemoryRungBoard:
    """Rung values of one process (tests, benchmark replays): ``rungs[k]`` = values recorded at rung k."""

    def __init__(self) -> None:
        self.rungs: dict[int, list[float]] = {}
        self._r0: float | None = None

    def report(self, rung: int, value: float) -> None:
        self.rungs.setdefault(rung, []).append(value)

    def values(self, rung: int) -> list[float]:
        return list(self.rungs.get(rung, []))

    def min_resource(self, proposed: float) -> float:
        if self._r0 is None:
            self._r0 = proposed
        return self._r0


class OptunaRungBoard:
    """Rung values as trial user attrs ``sh_rung_<k>``, read from every trial of the study (all workers, all
    machines); r_0 when automatic is fixed by the first trial as the study user attr ``sh_min_resource``."""

    def __init__(self, study: Any, trial: Any):
        self.study, self.trial = study, trial

    def report(self, rung: int, value: float) -> None:
        self.trial.set_user_attr(f"sh_rung_{rung}", float(value))

    def values(self, rung: int) -> list[float]:
        key = f"sh_rung_{rung}"
        return [float(t.user_attrs[key]) for t in self.study.get_trials(deepcopy=False) if key in t.user_attrs]

    def min_resource(self, proposed: float) -> float:
        r0 = self.study.user_attrs.get("sh_min_resource")
        if r0 is None:
            self.study.set_user_attr("sh_min_resource", float(proposed))
            r0 = proposed
        return float(r0)


class TrialStopper(Callback):
    """Successive halving on the trainer's evals. Schedule evals (``schedule.eval_every``) at least as often as
    the first rung, or rungs are only checked once per epoch."""

    def __init__(self, config: StopperConfig = StopperConfig(), board: RungBoard | None = None):
        self.config = config
        self.board: RungBoard = board if board is not None else MemoryRungBoard()
        self.reported: set[int] = set()
        self._finished = False
        self.r0 = 0.0
        self.decisions: list[tuple[int, float, bool]] = []  # (rung, value, kept)

    def resource(self, state: TrainState) -> float:
        return float(state.samples_seen if self.config.resource == "samples" else state.flops)

    def on_fit_end(self, state: TrainState) -> None:
        self._finished = True  # the final eval only records; a finished run is never stopped

    def on_eval(self, state: TrainState) -> None:
        # an eval after the last planned step (or the final one) only records: the run has trained to the end
        final = self._finished or state.step >= (state.planned_steps or float("inf"))
        c = self.config
        value = float(state.metrics[c.metric])
        if not self.observe(self.resource(state), -value if c.metric in LOWER_IS_BETTER else value, final):
            k = self.decisions[-1][0]
            state.stop(f"successive halving: {c.metric} {value:.4f} not in the top 1/{c.reduction_factor} at rung "
                       f"{k} ({c.resource} ≥ {self.r0 * c.reduction_factor ** k:.4g})", pruned=True)

    def observe(self, resource: float, value: float, final: bool = False) -> bool:
        """Record ``value`` at every newly reached rung; unless ``final``, decide at the newest rung: False means
        the trial should stop (not promotable)."""
        c = self.config
        if resource <= 0:
            return True
        self.r0 = c.min_resource or self.board.min_resource(resource)
        top = rung_of(resource, self.r0, c.reduction_factor)
        new = [k for k in range(top + 1) if k not in self.reported]
        for k in new:
            self.board.report(k, value)
            self.reported.add(k)
        if not new or final:
            return True
        keep = promotable(value, self.board.values(new[-1]), c.reduction_factor, c.min_trials)
        self.decisions.append((new[-1], value, keep))
        return keep
