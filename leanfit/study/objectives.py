"""Objectives by name and hard budgets as Optuna constraints.

Objectives: ``accuracy`` and ``macro_f1`` (↑, on the validation split) and any cost (↓): ``trainable_params``, ``train_flops``, ``wall_time_s``,
``peak_rss_bytes``, ``train_memory_bytes``, ... (every ``result.COST_KEYS`` entry), ``trainable_fraction``
(trainable / total params), ``eval_loss`` and ``perplexity`` (↓); language models add ``token_accuracy`` (↑).

Budgets: ``{name: limit}`` on the same names, e.g. ``{trainable_fraction: 1%, train_memory_bytes: 5e6}``. A
budget is a hard constraint: the trial's constraint value is ``used - limit`` (feasible when ≤ 0), stored in the
trial user attr ``constraint`` and given to Optuna with ``Trial.set_constraint`` (Optuna ≥ 5; older versions read
it through ``constraints_func``), so TPE / NSGA-II steer away from infeasible points and reports leave them out of
the Pareto set.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..engine.errors import ConfigError, UnknownNameError, check
from ..engine.result import COST_KEYS, RunResult

MAXIMIZE = ("accuracy", "macro_f1", "token_accuracy")  # validation metrics; test metrics are never objectives
MINIMIZE = (*COST_KEYS, "trainable_fraction", "eval_loss", "perplexity")
NAMES = (*MAXIMIZE, *MINIMIZE)
ALIASES = {"params": "trainable_params", "flops": "train_flops", "wall": "wall_time_s", "time": "wall_time_s",
           "memory": "train_memory_bytes", "peak_memory": "peak_rss_bytes", "rss": "peak_rss_bytes"}
CONSTRAINT_ATTR = "constraint"


def parse_objectives(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """'accuracy,train_flops' → ('accuracy', 'train_flops'); unknown names list close matches."""
    if names is None:
        names = ("accuracy", "train_flops")
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    check(isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names), "objectives", names,
          "names separated by commas, or a list of names", "Fix: e.g. objectives: accuracy,train_flops.")
    out = []
    for n in names:
        n = ALIASES.get(n, n)
        if n not in NAMES:
            raise UnknownNameError("objective", n, NAMES)
        if n in out:
            raise ConfigError(f"objective {n!r} is listed twice. Fix: list each objective once.")
        out.append(n)
    check(len(out) >= 1, "objectives", names, "at least one objective name")
    return tuple(out)


def directions(objectives: Sequence[str]) -> list[str]:
    return ["maximize" if o in MAXIMIZE else "minimize" for o in objectives]


def value(result: RunResult, name: str) -> float:
    """An objective/budget quantity of a result (validation metrics only: test is never an objective)."""
    return result.value(name)


def objective_values(result: RunResult, objectives: Sequence[str]) -> list[float]:
    return [value(result, o) for o in objectives]


def parse_budgets(budgets: Mapping[str, Any] | Iterable[str] | None) -> dict[str, float]:
    """{name: limit} or ["name<=limit", ...]; a limit may be a percentage ('1%') or a number ('5e6')."""
    if not budgets:
        return {}
    if isinstance(budgets, str):
        budgets = [budgets]
    check(isinstance(budgets, (Mapping, list, tuple)), "budgets", budgets,
          "a mapping {name: limit} or a list of NAME<=LIMIT", "Fix: e.g. budgets: {trainable_fraction: 1%}.")
    if not isinstance(budgets, Mapping):
        items = {}
        for b in budgets:
            name, sep, lim = str(b).partition("<=")
            if not sep:
                raise ConfigError(f"budget {b!r} must look like NAME<=LIMIT, e.g. trainable_fraction<=1% or "
                                  "train_memory_bytes<=5e6.")
            items[name.strip()] = lim.strip()
        budgets = items
    out: dict[str, float] = {}
    for name, lim in budgets.items():
        check(isinstance(name, str), "budgets", name, "budget names (text)")
        name = ALIASES.get(name, name)
        if name not in MINIMIZE:
            raise UnknownNameError("budget", name, MINIMIZE)
        out[name] = _number(lim, f"budgets.{name}")
    return out


def constraint_values(result: RunResult, budgets: Mapping[str, float]) -> list[float]:
    """used - limit per budget (≤ 0 is feasible). An unmeasured quantity counts as infeasible (+inf → 1e300)."""
    out = []
    for name, lim in budgets.items():
        v = value(result, name)
        out.append(v - lim if v == v else 1e300)
    return out


def constraints_func(frozen_trial: Any) -> Sequence[float]:
    """Optuna's constraints_func: the stored constraint values (a trial without any is treated as infeasible)."""
    return frozen_trial.user_attrs.get(CONSTRAINT_ATTR, (1.0,))


def _number(x: Any, field: str) -> float:
    if isinstance(x, str):
        s = x.strip()
        try:
            return float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            pass
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    raise ConfigError(f"{field} must be a number or a percentage like '1%', but got {x!r}.")
