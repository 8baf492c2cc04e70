"""Search skips, before training, points whose estimate breaks a hard budget (issue 15): they are never trained,
are told FAIL (not retried), say which budget broke, and are counted; the estimate is the run's own meter."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from leanfit.engine.recipe import Recipe
from leanfit.engine.run import run_recipe
from leanfit.study.config import StudyConfig
from leanfit.study.precheck import SKIPPED_ATTR, over_budget
from leanfit.study.runner import run_study

SPACE = {"task": "digits-mlp", "schedule": {"epochs": 1, "batch_size": 128},
         "adapter": {"head_only": {}, "full": {}, "lora": {"r": {"int": [2, 8]}}},
         "optimizer": {"choices": ["adamw"], "params": {"lr": {"log": [1e-3, 1e-2]}}}}


def test_points_over_a_param_budget_are_skipped_untrained_and_counted(storage_url):
    trained = []

    def run_fn(recipe, callbacks=()):
        trained.append(recipe.adapter.name)
        return run_recipe(recipe, callbacks=callbacks)

    cfg = StudyConfig.from_space(SPACE, n_trials=8, sampler="random", budgets={"trainable_params": 1500},
                                 stopper=None)
    s = run_study(cfg, storage_url, "p", run_fn=run_fn, log=None)
    trials = optuna.load_study(study_name="p", storage=storage_url).get_trials()
    skipped = [t for t in trials if SKIPPED_ATTR in t.user_attrs]
    assert s.skipped == len(skipped) >= 1 and "full" not in trained  # full FT of the MLP: ~5k params > 1.5k
    for t in skipped:
        res = t.user_attrs["result"]
        assert t.state == TrialState.FAIL and res["status"] == "failed" and "trainable_params" in res["error"]
        assert res["costs"]["trainable_params"] > 1500 and t.user_attrs["constraint"][0] > 0
    assert all(t.state != TrialState.FAIL for t in trials if SKIPPED_ATTR not in t.user_attrs)
    assert len(trained) + len(skipped) - sum("duplicate_of" in t.user_attrs for t in trials) <= 8


def test_the_estimate_equals_the_run_meters_and_budgets_it_cannot_estimate_are_left_to_training():
    r = Recipe.from_dict({"task": "digits-mlp", "adapter": {"name": "lora", "r": 4},
                          "schedule": {"epochs": 1, "batch_size": 128}})
    est, over = over_budget(r, {"train_memory_bytes": 1.0, "wall_time_s": 0.0})
    run = run_recipe(r)
    for k in ("trainable_params", "optimizer_state_bytes", "train_memory_bytes", "train_flops"):
        assert est[k] == run.costs[k], k
    assert set(over) == {"train_memory_bytes"}  # wall time is not estimable: never a reason to skip
    assert over_budget(r, {"wall_time_s": 1.0}) is None
