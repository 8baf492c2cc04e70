"""imbalanced-learn parity for the wrapped samplers, and end-to-end runs of selectors through run_recipe."""
from __future__ import annotations

import math

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


@pytest.mark.parametrize("temperature", [float("inf"), 2.0, 1.0])
def test_upsample_draws_classes_at_the_temperature_distribution(imb_task, temperature):
    """Through the Trainer, 6 epochs of draws: each class's share of the drawn rows is within 5 binomial standard
    deviations of p_c(T) = q_c^{1/T} / Σ q^{1/T} (2410.04579 Eq. 1), written out here. imb_task has 7 classes of
    100 rows and 3 of 12: T = inf → 0.1 each (minority total 0.30); T = 2 → 0.124 / 0.043 (0.129); T = 1 → the
    natural 0.136 / 0.016 (0.049)."""
    from leanfit.engine.callbacks import Callback

    class Rec(Callback):
        def __init__(self):
            self.idx = []

        def on_epoch_start(self, state):
            self.idx.append(state.epoch_indices.clone())

    sel, rec = registry.get("data", "upsample").build({"temperature": temperature, "fraction": 0.5}), Rec()
    model = imb_task.build_model(0)
    Trainer(imb_task, model, torch.optim.SGD(model.parameters(), 1e-3), Schedule(epochs=6, batch_size=128),
            [sel, rec], 0, evaluate=False, measure_memory=False).fit()
    y = imb_task.train["labels"]
    assert all(len(i) == round(0.5 * imb_task.n_train) for i in rec.idx) and len(rec.idx) == 6
    drawn = y[torch.cat(rec.idx)]
    n = torch.tensor([100.0] * 7 + [12.0] * 3)
    q = n / n.sum()
    p = q ** (1 / temperature) if math.isfinite(temperature) else torch.ones(10)
    p = p / p.sum()
    share = torch.bincount(drawn, minlength=10).double() / len(drawn)
    sd = (p * (1 - p) / len(drawn)).sqrt()
    assert ((share - p).abs() <= 5 * sd).all(), (share, p)
    # with replacement: minority rows repeat when oversampled (T = inf draws each minority row ~33 times)
    if temperature == float("inf"):
        assert len(torch.cat(rec.idx)[drawn == 9].unique()) == 12


# ---- end to end through run_recipe on digits-mlp -------------------------------------------------------------
def recipe(data, epochs=2):
    return Recipe.from_dict({"task": "digits-mlp", "data": data, "seed": 0,
                             "schedule": {"epochs": epochs, "batch_size": 32, "lr_schedule": "cosine"}})


def test_run_recipe_el2n_counts_scoring_flops():
    """FLOPs written out for the digits MLP (64 → 128 → 128 → 10, all Linear): a forward is 2·Σ k·d per row; the
    backward is 2× that per layer, except fc1, whose input needs no gradient (1×). EL2N with score_epochs = 1 trains
    its proxy one epoch on all N rows, then scores all N rows with one forward; the run itself trains 2 epochs on
    round(0.3·N) rows (AdamW's update has no matmul FLOPs)."""
    task = build_task("digits-mlp")
    r_rand = run_recipe(recipe({"name": "random", "fraction": 0.3}), task=task)
    r_el2n = run_recipe(recipe({"name": "el2n", "fraction": 0.3, "score_epochs": 1}), task=task)
    sc = r_el2n.extra["data_scoring"]
    assert r_el2n.status == "complete" and sc["method"] == "el2n"
    n, kept = task.n_train, round(0.3 * task.n_train)
    assert r_el2n.extra["data_kept_rows"] == kept
    assert r_el2n.costs["steps"] == r_rand.costs["steps"] == r_el2n.extra["planned_steps"] == 2 * math.ceil(kept / 32)
    assert r_el2n.costs["samples_seen"] == r_rand.costs["samples_seen"] == 2 * kept
    fwd = 2 * (64 * 128 + 128 * 128 + 128 * 10)
    bwd = 2 * (64 * 128) + 4 * (128 * 128 + 128 * 10)
    assert r_rand.costs["train_flops"] == 2 * kept * (fwd + bwd)
    assert sc["flops"] == 1 * n * (fwd + bwd) + n * fwd
    # same subset size → same per-step FLOPs; the difference is exactly the scoring cost
    assert r_el2n.costs["train_flops"] == pytest.approx(r_rand.costs["train_flops"] + sc["flops"])


def test_run_recipe_rs2_learns():
    task = build_task("digits-mlp")
    r = run_recipe(recipe({"name": "rs2", "fraction": 0.5}, epochs=4), task=task)
    assert r.status == "complete" and r.metrics["accuracy"] > 0.8
    assert r.costs["samples_seen"] == 4 * round(0.5 * task.n_train)
