"""`leanfit estimate` (issue 15): memory, optimizer state and FLOPs equal the run's own meters for fixed shapes,
across optimizers (plain, Muon's matmul step, zeroth-order MeZO), adapters, head-only caching, gradient
accumulation and max_steps; the memory verdict follows the limit."""
from __future__ import annotations

import pytest

from leanfit import Recipe, run_recipe
from leanfit.workflows.estimate import estimate

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
