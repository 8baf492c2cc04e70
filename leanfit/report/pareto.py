"""Pareto frontier of results: maximise accuracy, minimise any set of costs."""
from __future__ import annotations

from typing import Sequence

from ..engine.result import RunResult


def value(r: RunResult, key: str) -> float:
    """A metric (validation), ``test_<metric>``, cost or ``trainable_fraction`` of a result (NaN if absent)."""
    return r.value(key)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when a is no worse everywhere and better somewhere (all objectives minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(results: Sequence[RunResult], costs: Sequence[str] = ("trainable_params",),
                 metric: str = "accuracy") -> list[RunResult]:
    """Non-dominated completed results on (metric ↑, costs ↓), sorted by the first cost, chosen on validation
    metrics (never test). Runs a study marked ``extra["infeasible"]`` (over a hard budget) are never on the
    frontier."""
    done = [r for r in results if r.status == "complete" and metric in r.metrics and not r.extra.get("infeasible")]
    pts = [(-value(r, metric), *(value(r, c) for c in costs)) for r in done]
    front = [r for r, p in zip(done, pts) if not any(dominates(q, p) for q in pts if q is not p)]
    return sorted(front, key=lambda r: value(r, costs[0]))
