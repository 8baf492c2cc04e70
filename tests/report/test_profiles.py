import math

import numpy as np
import pytest

from leanfit.engine.result import RunResult
from leanfit.report.profiles import (default_targets, performance_profiles, performance_ratios, profile_scores,
                                     time_to_target)


def _run(task, label, curve, status="complete"):
    return RunResult(recipe={"name": label}, recipe_id=label, task=task, status=status,
                     metrics={"accuracy": curve[-1][1]},
                     curve=[{"wall_time_s": t, "flops": 10 * t, "samples": 0, "step": 0, "accuracy": a}
                            for t, a in curve])


def test_time_to_target_is_the_first_eval_reaching_it():
    r = _run("a", "x", [(1.0, 0.5), (2.0, 0.8), (3.0, 0.7), (4.0, 0.9)])
    assert time_to_target(r, 0.8) == 2.0 and time_to_target(r, 0.8, "flops") == 20.0
    assert time_to_target(r, 0.95) == math.inf
    assert time_to_target(_run("a", "x", [(1.0, 0.9)], status="failed"), 0.5) == math.inf


def test_scores_equal_the_numerical_area_under_rho():
    """AlgoPerf (arXiv 2306.07179): score = 1/(τmax−1) ∫_1^τmax ρ_s(τ) dτ, checked against a fine Riemann sum."""
    rng = np.random.default_rng(0)
    times = {f"s{i}": {f"w{j}": (math.inf if rng.random() < 0.2 else float(rng.uniform(1, 10))) for j in range(5)}
             for i in range(4)}
    scores = profile_scores(times, tau_max=4.0)
    best = {w: min(t[w] for t in times.values()) for w in times["s0"]}
    taus = np.linspace(1, 4, 300_001)
    for s, t in times.items():
        r = np.array([t[w] / best[w] for w in t])
        rho = (r[None, :] <= taus[:, None]).mean(1)
        assert scores[s] == pytest.approx(np.trapezoid(rho, taus) / 3, abs=1e-4)
    fastest_everywhere = {"a": {"w": 1.0, "v": 2.0}, "b": {"w": 2.0, "v": 8.0}}
    sc = profile_scores(fastest_everywhere)
    assert sc["a"] == 1.0 and sc["b"] == pytest.approx((0.5 * (4 - 2) / 3) + 0)  # ratios 2 and 4 → (2 + 0)/(2·3)


def test_profiles_from_runs_use_best_run_per_label_and_default_targets():
    runs = [_run("t1", "fast", [(1, 0.5), (2, 0.9)]), _run("t1", "fast", [(1, 0.9)]),  # best of two runs: 1
            _run("t1", "slow", [(1, 0.5), (3, 0.91)]),
            _run("t2", "fast", [(1, 0.2), (5, 0.6)]), _run("t2", "slow", [(2, 0.61)])]
    assert default_targets(runs, gap=0.02) == {"t1": pytest.approx(0.89), "t2": pytest.approx(0.59)}
    p = performance_profiles(runs, gap=0.02)
    assert p.times == {"fast": {"t1": 1.0, "t2": 5.0}, "slow": {"t1": 3.0, "t2": 2.0}}
    assert p.ratios == {"fast": {"t1": 1.0, "t2": 2.5}, "slow": {"t1": 3.0, "t2": 1.0}}
    assert p.scores["fast"] == pytest.approx(((4 - 1) + (4 - 2.5)) / (2 * 3))
    assert p.curves["fast"][0] == 0.5 and p.curves["fast"][-1] == 1.0
    assert performance_ratios({"a": {"w": math.inf}})["a"]["w"] == math.inf
