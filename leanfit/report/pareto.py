"""Pareto frontier of results: maximise accuracy, minimise any set of costs."""
from __future__ import annotations

from typing import Sequence

from ..engine.result import RunResult


def value(r: RunResult, key: str) -> float:
    """A metric or cost of a result by name (accuracy, eval_loss, any COST_KEYS entry, or trainable_fraction)."""
    if key == "trainable_fraction" and r.costs.get("total_params"):
        return float(r.costs["trainable_params"]) / float(r.costs["total_params"])
    if key in r.metrics:
        return float(r.metrics[key])
    if key in r.costs:
        return float(r.costs[key])
    raise KeyError(f"{key!r} is neither a metric {sorted(r.metrics)} nor a cost {sorted(r.costs)}")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when a is no worse everywhere and better somewhere (all objectives minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(results: Sequence[RunResult], costs: Sequence[str] = ("trainable_params",),
                 metric: str = "accuracy") -> list[RunResult]:
    """Non-dominated completed results on (metric ↑, costs ↓), sorted by the first cost. Runs a study marked
    ``extra["infeasible"]`` (over a hard budget) are never on the frontier."""
    done = [r for r in results if r.status == "complete" and metric in r.metrics and not r.extra.get("infeasible")]
    pts = [(-value(r, metric), *(value(r, c) for c in costs)) for r in done]
    front = [r for r, p in zip(done, pts) if not any(dominates(q, p) for q in pts if q is not p)]
    return sorted(front, key=lambda r: value(r, costs[0]))
