"""AlgoPerf-style performance profiles across tasks, from raw stored learning curves.

Dahl et al., "Benchmarking Neural Network Training Algorithms" (AlgoPerf, arXiv 2306.07179), §4.5: for submission
s on workload w, t_{s,w} is the training time until the first eval reaching the workload's target (eval time
excluded; ∞ if never reached). The performance ratio is r_{s,w} = t_{s,w} / min_{s'} t_{s',w}, the profile
ρ_s(τ) = |{w : r_{s,w} ≤ τ}| / |W|, and the benchmark score is the normalised area under ρ_s over
τ ∈ [1, τ_max]:

    score_s = 1/(τ_max − 1) · ∫_1^{τ_max} ρ_s(τ) dτ
            = 1/|W| · Σ_w max(0, τ_max − r_{s,w}) / (τ_max − 1)

(exact: ρ_s is a step function). τ_max = 4 as in AlgoPerf. Here a "submission" is a recipe label (adapter +
optimizer + data, or the recipe's name) and its time on a task is the best over its runs (its tuning trials);
"time" is a curve column: ``wall_time_s`` (default), ``flops`` or ``samples``. Our own code: no library provides
it (AlgoPerf's scoring scripts read their own log format).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..engine.errors import check
from ..engine.result import RunResult

TIME_KEYS = ("wall_time_s", "flops", "samples", "step")
TAU_MAX = 4.0


def time_to_target(result: RunResult, target: float, time_key: str = "wall_time_s", metric: str = "accuracy") -> float:
    """Time at the first eval with ``metric ≥ target`` (∞ if never, or if the run failed)."""
    check(time_key in TIME_KEYS, "time_key", time_key, f"one of {TIME_KEYS}")
    if result.status == "failed":
        return math.inf
    for point in result.curve:
        if metric in point and point[metric] >= target:
            return float(point[time_key])
    return math.inf


def default_targets(results: Sequence[RunResult], gap: float = 0.01, metric: str = "accuracy") -> dict[str, float]:
    """Per task: the best final metric of any completed run minus ``gap`` (absolute)."""
    best: dict[str, float] = {}
    for r in results:
        if r.status == "complete" and metric in r.metrics:
            best[r.task] = max(best.get(r.task, -math.inf), float(r.metrics[metric]))
    return {t: b - gap for t, b in best.items()}


def profile_scores(times: Mapping[str, Mapping[str, float]], tau_max: float = TAU_MAX) -> dict[str, float]:
    """times[submission][workload] → AlgoPerf score in [0, 1] (missing workloads count as ∞)."""
    ratios = performance_ratios(times)
    workloads = sorted({w for t in times.values() for w in t})
    out = {}
    for s, rs in ratios.items():
        area = sum(max(0.0, tau_max - rs.get(w, math.inf)) for w in workloads)
        out[s] = area / (len(workloads) * (tau_max - 1)) if workloads else 0.0
    return out


def performance_ratios(times: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """r_{s,w} = t_{s,w} / min_s' t_{s',w}; ∞ where s never reached the target (or nobody did)."""
    workloads = sorted({w for t in times.values() for w in t})
    best = {w: min((t.get(w, math.inf) for t in times.values()), default=math.inf) for w in workloads}
    out: dict[str, dict[str, float]] = {}
    for s, t in times.items():
        out[s] = {}
        for w in workloads:
            tw = t.get(w, math.inf)
            if math.isinf(tw) or math.isinf(best[w]):
                out[s][w] = math.inf
            elif best[w] <= 0:
                out[s][w] = 1.0 if tw <= 0 else math.inf
            else:
                out[s][w] = tw / best[w]
    return out


def rho(ratios: Mapping[str, float], taus: Sequence[float]) -> list[float]:
    """ρ(τ) for one submission: fraction of workloads with r ≤ τ."""
    n = len(ratios)
    return [sum(r <= tau for r in ratios.values()) / n if n else 0.0 for tau in taus]


@dataclass
class Profiles:
    targets: dict[str, float]
    time_key: str
    times: dict[str, dict[str, float]]  # submission → task → time to target
    ratios: dict[str, dict[str, float]]
    scores: dict[str, float]
    tau_max: float = TAU_MAX
    taus: list[float] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)  # submission → ρ(τ) on taus

    def ranking(self) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])


def performance_profiles(results: Sequence[RunResult], targets: Mapping[str, float] | None = None,
                         gap: float = 0.01, time_key: str = "wall_time_s", metric: str = "accuracy",
                         submission: Callable[[RunResult], str] = lambda r: r.label, tau_max: float = TAU_MAX,
                         n_taus: int = 301) -> Profiles:
    """Profiles of every submission over every task present in ``results``."""
    check(tau_max > 1, "tau_max", tau_max, "a number > 1")
    targets = dict(targets) if targets is not None else default_targets(results, gap, metric)
    times: dict[str, dict[str, float]] = {}
    for r in results:
        if r.task not in targets:
            continue
        s = submission(r)
        t = time_to_target(r, targets[r.task], time_key, metric)
        times.setdefault(s, {})
        times[s][r.task] = min(times[s].get(r.task, math.inf), t)
    ratios = performance_ratios(times)
    taus = [1 + (tau_max - 1) * i / (n_taus - 1) for i in range(n_taus)]
    for s in ratios:  # every task counts, even where a submission has no run
        for w in targets:
            ratios[s].setdefault(w, math.inf)
    return Profiles(targets=targets, time_key=time_key, times=times, ratios=ratios,
                    scores=profile_scores({s: {**{w: math.inf for w in targets}, **t} for s, t in times.items()},
                                          tau_max),
                    tau_max=tau_max, taus=taus, curves={s: rho(r, taus) for s, r in ratios.items()})
