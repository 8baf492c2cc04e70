"""Classifier metrics against a hand count, the collapse flag, and test scored once per finished run."""
from __future__ import annotations

import pytest
import torch

from leanfit import Recipe, run_recipe
from leanfit.engine.metrics import AT_BASELINE, COLLAPSED, classification_evaluation


def onehot_logits(pred, c):
    return torch.nn.functional.one_hot(torch.tensor(pred), c).float() * 5


def test_macro_f1_confusion_and_per_class_equal_a_hand_count():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = [0, 0, 1, 1, 2, 2]
    ev = classification_evaluation(onehot_logits(pred, 3), y, 3, ["a", "b", "c"])
    # class a: tp 2, fp 0, fn 1 → p 1, r 2/3; b: tp 1, fp 1, fn 1 → p 1/2, r 1/2; c: tp 1, fp 1, fn 0 → p 1/2, r 1
    f1 = [2 * p * r / (p + r) for p, r in ((1, 2 / 3), (0.5, 0.5), (0.5, 1))]
    assert ev.metrics["accuracy"] == pytest.approx(4 / 6)
    assert ev.metrics["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert ev.details["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert ev.details["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert ev.details["majority_baseline"] == pytest.approx(0.5) and ev.flags == []


def test_a_collapsed_classifier_is_flagged():
    y = torch.tensor([0] * 87 + [1] * 13)  # 13% spam, as in the SMS data the issue found
    ev = classification_evaluation(onehot_logits([0] * 100, 2), y, 2)
    assert ev.metrics["accuracy"] == pytest.approx(0.87) and set(ev.flags) == {COLLAPSED, AT_BASELINE}
    assert ev.metrics["macro_f1"] == pytest.approx((2 * 0.87 / 1.87 + 0) / 2)


def test_run_scores_validation_during_training_and_test_once_at_the_end(monkeypatch):
    from leanfit.engine.task import Task

    calls = []
    original = Task.evaluate

    def spy(self, model, split="validation", *a, **k):
        calls.append(split)
        return original(self, model, split, *a, **k)

    monkeypatch.setattr(Task, "evaluate", spy)
    r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "optimizer": {"name": "adamw", "lr": 3e-3},
                                     "schedule": {"epochs": 3, "batch_size": 64, "eval_every": 5}}))
    assert calls.count("test") == 1 and calls[-1] == "test"  # once, after every validation eval
    assert set(calls[:-1]) == {"validation"} and len(calls) > 3
    assert r.test_metrics["accuracy"] > 0.8 and r.metrics["accuracy"] == r.curve[-1]["accuracy"]
    assert set(r.diagnostics) == {"validation", "test"} and "macro_f1" in r.test_metrics
    calls.clear()
    bad = run_recipe(Recipe.from_dict({"task": "digits-mlp", "optimizer": {"name": "sgd", "lr": 1e6},
                                       "schedule": {"epochs": 1, "batch_size": 64}}))
    assert bad.status == "failed" and "test" not in calls and bad.test_metrics == {}


def test_objectives_never_take_a_test_metric():
    from leanfit.engine.errors import UnknownNameError
    from leanfit.study.objectives import parse_objectives

    assert parse_objectives("macro_f1,train_flops") == ("macro_f1", "train_flops")
    with pytest.raises(UnknownNameError):
        parse_objectives("test_accuracy")
