"""imbalanced-learn parity for the wrapped samplers, and end-to-end runs of selectors through run_recipe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.engine.recipe import Recipe, Schedule
from leanfit.engine.task import Task, build_task
from leanfit.engine.run import run_recipe
from leanfit.engine.trainer import Trainer


@pytest.fixture(scope="module")
def imb_task():
    t = build_task("digits-mlp")
    y = t.train["labels"]
    keep = torch.cat([(y == c).nonzero().flatten()[: (100 if c < 7 else 12)] for c in range(10)]).sort().values
    return Task(name="digits-imb", build_model=t.build_model, train={k: v[keep] for k, v in t.train.items()},
                validation=t.validation, test=t.test, num_classes=10)


def fit(task, name, params=None, seed=0):
    sel = registry.get("data", name).build(params or {})
    model = task.build_model(seed)
    s = Trainer(task, model, torch.optim.AdamW(model.parameters(), 1e-3), Schedule(epochs=1, batch_size=64), [sel],
                seed).fit()
    return sel, s


@pytest.mark.parametrize("name,cls", [("random_oversample", RandomOverSampler), ("random_undersample", RandomUnderSampler)])
@pytest.mark.parametrize("strategy", ["auto", "all"])
def test_random_resampling_matches_imblearn(imb_task, name, cls, strategy):
    sel, _ = fit(imb_task, name, {"sampling_strategy": strategy}, seed=5)
    x, y = imb_task.train["x"].numpy(), imb_task.train["labels"].numpy()
    xr, yr = cls(sampling_strategy=strategy, random_state=5).fit_resample(x, y)
    np.testing.assert_array_equal(imb_task.train["x"][sel.rows].numpy(), xr)
    np.testing.assert_array_equal(imb_task.train["labels"][sel.rows].numpy(), yr)


def test_smote_matches_imblearn_and_restores_task(imb_task):
    n = imb_task.n_train
    seen = {}

    class Peek(registry.get("data", "smote").factory):
        def on_epoch_start(self, state):
            super().on_epoch_start(state)
            seen["x"], seen["y"] = state.task.train["x"].clone(), state.task.train["labels"].clone()

    sel = Peek(registry.get("data", "smote").make_config({"k_neighbors": 3}))
    model = imb_task.build_model(0)
    s = Trainer(imb_task, model, torch.optim.AdamW(model.parameters(), 1e-3), Schedule(epochs=1, batch_size=64),
                [sel], 2).fit()
    xr, yr = SMOTE(k_neighbors=3, random_state=2).fit_resample(imb_task.train["x"].double().numpy(),
                                                                imb_task.train["labels"].numpy())
    np.testing.assert_allclose(seen["x"].numpy(), xr, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(seen["y"].numpy(), yr)
    assert s.data_report["synthetic_rows"] == len(yr) - n
    assert imb_task.n_train == n


def test_smote_rejects_token_inputs():
    t = Task(name="tok", build_model=lambda s: None, train={"input_ids": torch.zeros(4, 3, dtype=torch.long),
                                                           "labels": torch.tensor([0, 0, 0, 1])},
             validation={"input_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([0])},
             test={"input_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([0])}, num_classes=2)
    from leanfit.methods.data.imblearn_samplers import float_feature_key
    with pytest.raises(ConfigError, match="smote needs exactly one float input tensor"):
        float_feature_key(t.train)


def test_bad_strategy_error():
    with pytest.raises(ConfigError, match="sampling_strategy must be one of"):
        registry.get("data", "smote").build({"sampling_strategy": "half"})


def test_upsample_balances_minority_end_to_end(imb_task):
    _, s = fit(imb_task, "upsample", {"temperature": float("inf")})
    # T = inf: classes equally likely; 3 minority classes (7, 8, 9) hold 3·12 of 736 rows but ~30% of draws
    y = imb_task.train["labels"][s.epoch_indices]
    share = (y >= 7).float().mean().item()
    assert 0.22 < share < 0.38


# ---- end to end through run_recipe on digits-mlp -------------------------------------------------------------
def recipe(data, epochs=2):
    return Recipe.from_dict({"task": "digits-mlp", "data": data, "seed": 0,
                             "schedule": {"epochs": epochs, "batch_size": 32, "lr_schedule": "cosine"}})


def test_run_recipe_el2n_counts_scoring_flops():
    task = build_task("digits-mlp")
    r_rand = run_recipe(recipe({"name": "random", "fraction": 0.3}), task=task)
    r_el2n = run_recipe(recipe({"name": "el2n", "fraction": 0.3, "score_epochs": 1}), task=task)
    sc = r_el2n.extra["data_scoring"]
    assert r_el2n.status == "complete" and 0 < r_el2n.metrics["accuracy"] <= 1
    assert r_el2n.costs["steps"] == r_rand.costs["steps"] == r_el2n.extra["planned_steps"]
    assert r_el2n.costs["samples_seen"] == r_rand.costs["samples_seen"] == 2 * round(0.3 * task.n_train)
    # same subset size → same per-step FLOPs; the difference is exactly the scoring cost
    assert r_el2n.costs["train_flops"] == pytest.approx(r_rand.costs["train_flops"] + sc["flops"])


def test_run_recipe_rs2_learns():
    task = build_task("digits-mlp")
    r = run_recipe(recipe({"name": "rs2", "fraction": 0.5}, epochs=4), task=task)
    assert r.status == "complete" and r.metrics["accuracy"] > 0.8
    assert r.costs["samples_seen"] == 4 * round(0.5 * task.n_train)
