"""Early stopping on validation and keeping the best checkpoint (issue 15)."""
from __future__ import annotations

import pytest
import torch

from leanfit import Recipe, run_recipe
from leanfit.engine.best import BestTracker
from leanfit.engine.callbacks import Callback


def recipe(**sched):
    return Recipe.from_dict({"task": {"name": "digits-mlp", "n_train": 300}, "optimizer": {"name": "sgd", "lr": 0.05},
                             "schedule": {"epochs": 6, "batch_size": 32, **sched}})


class SpoilLastEpoch(Callback):
    """Zeroes the head at the end of the last epoch: the end of training is worse than an earlier epoch."""

    def on_epoch_end(self, state):
        if state.epoch == state.epochs - 1:
            with torch.no_grad():
                state.model.head.weight.mul_(0.0)


def test_a_run_that_gets_worse_ends_with_its_best_weights_and_says_which():
    plain = run_recipe(recipe(epochs=3), callbacks=[SpoilLastEpoch()])
    best = run_recipe(recipe(epochs=3, keep_best=True), callbacks=[SpoilLastEpoch()])
    bc = best.extra["best_checkpoint"]
    assert bc["restored"] and bc["step"] < bc["final_step"] and bc["epoch"] < 2
    assert best.metrics["accuracy"] == pytest.approx(bc["value"])  # the final eval scores the restored weights
    assert best.metrics["accuracy"] > plain.metrics["accuracy"] + 0.1
    assert best.test_metrics["accuracy"] > plain.test_metrics["accuracy"] + 0.1


def test_early_stopping_stops_after_patience_evals_without_improvement():
    r = run_recipe(recipe(early_stopping_patience=1, eval_every=2, min_delta=0.5))  # nothing improves by 0.5
    assert r.status == "complete" and "early stopping" in r.extra["stop_reason"]
    assert r.costs["steps"] == 4  # evals at steps 2 (best) and 4 (no improvement: stop)


def test_tracker_direction_follows_the_metric():
    m = torch.nn.Linear(2, 2)
    t = BestTracker(monitor="eval_loss", keep=True)
    assert not t.observe({"eval_loss": 1.0}, 1, 0, m) and t.best["value"] == 1.0
    assert not t.observe({"eval_loss": 0.5}, 2, 0, m) and t.best["step"] == 2
    assert not t.observe({"eval_loss": 0.9}, 3, 0, m) and t.best["step"] == 2
