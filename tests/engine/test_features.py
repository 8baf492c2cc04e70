"""Frozen-prefix feature caching (issue 17): a head-only run computes the frozen part once and then trains the head
alone, with the same metrics as recomputing it every step in eval mode, and FLOPs that say what was computed."""
from __future__ import annotations

import torch
from torch import nn

from leanfit import Recipe, run_recipe
from leanfit.engine.features import head_module, try_cache
from leanfit.engine.task import build_task


def recipe(mode, adapter="head_only", epochs=3):
    return Recipe.from_dict({"task": "digits-mlp", "adapter": adapter, "optimizer": {"name": "adamw", "lr": 1e-2},
                             "schedule": {"epochs": epochs, "batch_size": 64, "frozen_prefix": mode}})


def test_cached_head_only_run_equals_the_recomputed_one_and_costs_less():
    cached, recomputed = run_recipe(recipe("cache")), run_recipe(recipe("eval"))
    assert cached.metrics == recomputed.metrics and cached.test_metrics == recomputed.test_metrics
    assert cached.curve[-1]["accuracy"] == recomputed.curve[-1]["accuracy"]
    t = build_task("digits-mlp")
    # the caching pass: one forward of the whole model over the train rows (fc1, fc2 and the head's 128→10)
    prefix, head_fwd = 2 * t.n_train * (64 * 128 + 128 * 128), 2 * t.n_train * 128 * 10
    assert cached.costs["cache_flops"] == prefix + head_fwd
    # recomputing pays the prefix every epoch: 3(P + head fwd + bwd); caching: (P + head fwd) + 3(head fwd + bwd)
    assert cached.costs["train_flops"] == recomputed.costs["train_flops"] - 2 * prefix + head_fwd


def test_only_head_only_runs_are_cached():
    lora = run_recipe(recipe("cache", {"name": "lora", "r": 4}, epochs=1))
    assert lora.costs["cache_flops"] == 0
    t = build_task("digits-mlp")
    model = t.build_model(0).requires_grad_(False)
    assert head_module(model, t) is None  # nothing trains
    model.head.requires_grad_(True)
    assert head_module(model, t) is model.head


def test_a_model_that_does_more_after_its_head_is_not_cached():
    t = build_task("digits-mlp")

    class Scaled(nn.Module):  # output = 2 · head(x): caching the head's input would drop the scaling
        def __init__(self):
            super().__init__()
            self.inner = t.build_model(0)
            self.head = self.inner.head

        def forward(self, x):
            return 2 * self.inner(x)

    m = Scaled().requires_grad_(False)
    m.head.requires_grad_(True)
    assert try_cache(m, t, lambda b: b) is None


def test_metering_leaves_a_frozen_prefix_with_dropout_in_eval_mode():
    """The step meter runs the model in train mode; it must hand back the modes it found, or a recomputed
    (frozen_prefix: eval) run trains on dropout-noised features after every newly metered batch shape and no
    longer matches the cached run (seen on MiniLM: 5 points of accuracy apart)."""
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.task import Task
    from leanfit.engine.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 6, generator=g), torch.randint(0, 3, (48,), generator=g)

    class Net(nn.Sequential):
        def forward(self, x):
            return super().forward(x)

    def build(seed):
        torch.manual_seed(seed)
        return Net(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3))

    task = Task("drop", build, *[{"x": x, "labels": y}] * 3, 3, head=("2",))
    weights = {}
    for mode in ("cache", "eval"):
        model = build(0)
        model[0].requires_grad_(False)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        # batch 20 of 48 rows: shapes 20 and 8, so a second shape is metered mid-epoch
        Trainer(task, model, opt, Schedule(epochs=2, batch_size=20, frozen_prefix=mode), evaluate=False).fit()
        weights[mode] = model[2].weight.detach().clone()
    assert torch.allclose(weights["cache"], weights["eval"], atol=1e-6)


def test_a_run_on_a_subset_caches_and_pays_for_only_the_rows_it_trains_on():
    """A data selector's subset: the cache computes (and the run is charged for) the rows the run trains on, not the
    whole train split — else every subset run would cost a full caching pass (seen on MiniLM: a 10% subset charged
    the same FLOPs as full data)."""
    t = build_task("digits-mlp")
    per_row = 2 * (64 * 128 + 128 * 128) + 2 * 128 * 10  # prefix + the head's forward, one row
    for data, epochs in (({"name": "random", "fraction": 0.3}, 3), ({"name": "rs2", "fraction": 0.1}, 2)):
        r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "adapter": "head_only", "data": data,
                                         "optimizer": {"name": "adamw", "lr": 1e-2},
                                         "schedule": {"epochs": epochs, "batch_size": 64}}))
        seen = r.costs["samples_seen"] if data["name"] == "rs2" else r.costs["samples_seen"] // epochs
        assert r.costs["cache_flops"] == seen * per_row  # RS2 without replacement: every row seen once
        assert r.costs["cache_flops"] < 0.35 * t.n_train * per_row
