"""`leanfit estimate` (issue 15): memory, optimizer state and FLOPs equal the run's own meters for fixed shapes,
across optimizers (plain, Muon's matmul step, zeroth-order MeZO), adapters, head-only caching, gradient
accumulation and max_steps; the memory verdict follows the limit."""
from __future__ import annotations

import pytest

from leanfit import Recipe, run_recipe
from leanfit.engine.estimate import estimate

CASES = [
    {"task": "digits-mlp", "adapter": {"name": "lora", "r": 4}, "schedule": {"epochs": 2, "batch_size": 64}},
    {"task": "digits-mlp", "adapter": "head_only", "schedule": {"epochs": 2, "batch_size": 100}},
    {"task": "digits-mlp", "optimizer": "muon", "schedule": {"epochs": 1, "batch_size": 64, "max_steps": 7}},
    {"task": {"name": "mnist1d-cnn", "n_train": 600}, "optimizer": "mezo", "schedule": {"epochs": 1, "batch_size": 128}},
    {"task": "digits-mlp", "optimizer": "sgd", "schedule": {"epochs": 2, "batch_size": 32, "grad_accum": 3}},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['task'] if isinstance(c['task'], str) else c['task']['name']}"
                         f"-{c.get('adapter', 'full')}-{c.get('optimizer', 'adamw')}")
def test_estimate_equals_the_runs_meters(case):
    r = Recipe.from_dict(case)
    e = estimate(r, timed_steps=2)
    run = run_recipe(r)
    for key in ("trainable_params", "total_params", "optimizer_state_bytes", "activation_bytes", "train_memory_bytes",
                "train_flops"):
        assert getattr(e, key) == run.costs[key], key
    assert e.planned_steps == run.costs["steps"] and e.step_time_s > 0 and e.wall_time_s > 0


def test_memory_verdict_follows_the_limit():
    r = Recipe.from_dict(CASES[0])
    assert estimate(r, 1, memory_gib=64).fits
    tiny = estimate(r, 1, memory_gib=1e-6)
    assert not tiny.fits and tiny.memory_limit_bytes == 1073


def test_forecast_includes_the_feature_cache_build():
    """A head-only run builds its frozen-feature cache before the first step, inside its wall time: the forecast
    adds that build (it used to be step time × steps only, ~99% under the run for MiniLM head-only)."""
    r = Recipe.from_dict(CASES[1])
    e = estimate(r, timed_steps=2)
    assert e.flops_per_step > 0 and e.wall_time_s > e.step_time_s * e.planned_steps
    full = estimate(Recipe.from_dict(CASES[0]), timed_steps=2)
    assert full.wall_time_s == full.step_time_s * full.planned_steps


def test_step_time_is_on_the_runs_clock_without_metering(monkeypatch):
    """The run's clock is paused while a new batch shape is metered (FLOPs, saved activations); the estimate's step
    time used to include that metering, doubling SmolLM2's dynamically padded steps. Metering made artificially
    slow (1 s per call) must not show in the step time of a millisecond MLP step."""
    import time

    from leanfit.engine.metering import StepMeter

    real = StepMeter.flops

    def slow(self, batch):
        time.sleep(1.0)
        return real(self, batch)

    monkeypatch.setattr(StepMeter, "flops", slow)
    e = estimate(Recipe.from_dict(CASES[0]), timed_steps=3)
    assert e.step_time_s < 1.0
