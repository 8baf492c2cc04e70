import math

import optuna
import pytest
import torch

from leanfit import Recipe, load_runs, run_recipe, save_run
from leanfit.engine.callbacks import Callback
from leanfit.engine.run import build_run
from leanfit.engine.trainer import HOOKS, Trainer

BASE = {"task": "digits-mlp", "optimizer": {"name": "adamw", "lr": 3e-3},
        "schedule": {"epochs": 2, "batch_size": 64}, "seed": 1}


def strip_times(curve):
    return [{k: v for k, v in p.items() if k != "wall_time_s"} for p in curve]


def test_same_seed_gives_identical_metrics_and_curve():
    r = Recipe.from_dict(BASE)
    a, b = run_recipe(r), run_recipe(r)
    assert a.metrics == b.metrics
    assert strip_times(a.curve) == strip_times(b.curve)
    assert a.costs["train_flops"] == b.costs["train_flops"]
    c = run_recipe(r.replace(seed=2))
    assert c.metrics != a.metrics


def test_run_learns_and_reports_every_cost():
    res = run_recipe(Recipe.from_dict(BASE))
    assert res.status == "complete"
    assert res.metrics["accuracy"] > 0.9  # digits is easy; a broken loop stays near 0.1
    n_train = 1259  # digits: 1,797 rows − 20% test − 10% validation (stratified)
    assert res.costs["samples_seen"] == 2 * n_train
    assert res.costs["steps"] == 2 * math.ceil(n_train / 64)
    assert res.costs["optimizer_state_bytes"] == 2 * 4 * 26122 + 6 * 4
    assert res.costs["train_memory_bytes"] == 26122 * 4 * 2 + res.costs["optimizer_state_bytes"] + res.costs["activation_bytes"]
    assert res.curve[-1]["samples"] == 2 * n_train and len(res.curve) == 2
    assert res.env["torch"].startswith("2.") and res.data_hash


def test_hooks_fire_in_order():
    seen = []

    class Spy(Callback):
        pass

    for h in HOOKS:
        setattr(Spy, h, lambda self, state, h=h: seen.append(h))
    r = Recipe.from_dict({**BASE, "schedule": {"epochs": 1, "batch_size": 1000}})
    run = build_run(r)
    task, model, opt, cbs = run.task, run.model, run.optimizer, run.callbacks
    Trainer(task, model, opt, r.schedule, [Spy()], r.seed).fit()
    step = ["before_step", "after_backward", "after_step"]
    assert seen == ["on_fit_start", "on_epoch_start", *step, *step, "on_epoch_end", "on_fit_end", "on_eval"]


@pytest.mark.parametrize("budget, key, limit", [("max_steps", "steps", 5), ("max_samples", "samples_seen", 300)])
def test_budgets_stop_training(budget, key, limit):
    r = Recipe.from_dict({**BASE, "schedule": {"epochs": 5, "batch_size": 64, budget: limit}})
    res = run_recipe(r)
    assert res.status == "complete" and res.extra["stop_reason"] == f"budget {budget} reached"
    assert limit <= res.costs[key] < limit + 64


def test_nan_loss_fails_clearly_and_is_stored(storage_url):
    r = Recipe.from_dict({**BASE, "optimizer": {"name": "sgd", "lr": 1e12, "momentum": 0.0}})
    res = run_recipe(r)
    assert res.status == "failed"
    assert "training loss became" in res.error and "lower the learning rate" in res.error
    save_run(res, storage_url)
    study = optuna.load_study(study_name="leanfit-runs", storage=storage_url)
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert load_runs(storage_url)[0].error == res.error


@pytest.mark.parametrize("kind", ["linear", "cosine", "onecycle"])
def test_lr_schedules_follow_their_shape(kind):
    lrs = []

    class LR(Callback):
        def after_step(self, state):
            lrs.append(state.optimizer.param_groups[0]["lr"])

    r = Recipe.from_dict({**BASE, "schedule": {"epochs": 1, "batch_size": 64, "lr_schedule": kind,
                                               "warmup_ratio": 0.2}})
    run = build_run(r)
    task, model, opt, cbs = run.task, run.model, run.optimizer, run.callbacks
    Trainer(task, model, opt, r.schedule, [LR()], r.seed).fit()
    peak = max(lrs)
    assert lrs.index(peak) <= 0.3 * len(lrs)  # warm-up first
    assert lrs[-1] < 0.2 * peak  # annealed by the end
    assert peak == pytest.approx(3e-3, rel=0.05)


def test_store_round_trip_sqlite_and_journal(storage_url, tmp_path):
    res = run_recipe(Recipe.from_dict({**BASE, "schedule": {"epochs": 1}}))
    for url in (storage_url, str(tmp_path / "runs.log")):
        n = save_run(res, url)
        back = load_runs(url)
        assert n == 0 and len(back) == 1
        assert back[0].to_dict() == res.to_dict()
    study = optuna.load_study(study_name="leanfit-runs", storage=storage_url)
    t = study.trials[0]
    assert t.value == res.metrics["accuracy"]
    assert t.user_attrs["trainable_params"] == 26122 and t.user_attrs["recipe_id"] == res.recipe_id


def test_head_only_trains_only_the_head():
    r = Recipe.from_dict({**BASE, "adapter": "head_only", "schedule": {"epochs": 1}})
    run = build_run(r)
    task, model, opt, _ = run.task, run.model, run.optimizer, run.callbacks
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(task, model, opt, r.schedule, seed=1).fit()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != n.startswith("head."), n


def test_schedule_free_is_evaluated_on_its_averaged_weights():
    """Schedule-free AdamW trains on y and is evaluated on x (2405.15682): the Trainer swaps for every eval and
    leaves x in the model after fit, so the final accuracy is that of x."""
    rec = Recipe.from_dict({"task": "digits-mlp", "optimizer": {"name": "schedulefreeadamw", "lr": 3e-3},
                            "schedule": {"epochs": 1, "batch_size": 64}})
    run = build_run(rec)
    task, model, opt, cbs = run.task, run.model, run.optimizer, run.callbacks
    trainer = Trainer(task, model, opt, rec.schedule, cbs, rec.seed)
    s = trainer.fit()
    assert all(not g["train_mode"] for g in opt.param_groups)  # ended on the evaluated (averaged) iterate
    acc_x = trainer.evaluate().metrics["accuracy"]
    assert acc_x == s.metrics["accuracy"]
    opt.train()  # the training iterate y differs from x
    y = [p.detach().clone() for p in s.model.parameters()]
    opt.eval()
    x = [p.detach().clone() for p in s.model.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(x, y))


def test_closure_optimizers_get_the_standard_closure_and_every_evaluation_is_metered():
    """L-BFGS calls the closure several times a step: the Trainer meters one forward+backward per call, and the
    model-level memory account includes gradients (SANIA and L-BFGS are gradient methods)."""
    base = {"task": "digits-mlp", "schedule": {"epochs": 1, "batch_size": 256, "max_steps": 3}}
    adam = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "adamw"}}))
    lbfgs = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "lbfgs", "lr": 0.1, "max_iter": 4}}))
    sania = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "sania"}}))
    alig = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "alig", "max_lr": 0.1}}))
    per_step = adam.costs["train_flops"] / adam.costs["steps"]
    assert lbfgs.status == "complete" and lbfgs.costs["steps"] == 3
    evals = lbfgs.costs["train_flops"] / per_step
    assert evals == round(evals) and 3 < evals <= 3 * 5  # ≥ 2 evaluations in some step, ≤ max_eval = 5/4·max_iter
    assert sania.costs["train_flops"] == adam.costs["train_flops"]  # one closure call per step
    assert alig.costs["train_flops"] == adam.costs["train_flops"]
    params = adam.costs["trainable_params"] * 4
    for r in (lbfgs, sania):  # parameters + gradients + state + activations
        assert r.costs["train_memory_bytes"] >= 2 * params + r.costs["optimizer_state_bytes"]
    for r in (lbfgs, sania, alig):  # all learned something in 3 steps (chance: 0.10)
        assert r.metrics["accuracy"] > 0.15


def test_trainer_trains_on_the_tasks_per_sample_loss():
    """Task documents ``per_sample_loss`` as the override point for non-classification tasks; the Trainer must
    train on it (it used to hard-code cross-entropy, so a regression task failed on float labels)."""
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.task import Task

    class Regression(Task):
        def per_sample_loss(self, outputs, batch):
            return (outputs.squeeze(-1) - batch["labels"]) ** 2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g)
    data = {"x": x, "labels": x @ torch.tensor([1.0, -2.0, 0.5])}
    task = Regression("reg", None, data, data, data, 1, head=(), forward=lambda m, b: m(b["x"]))
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    w0 = model.weight.detach().clone()
    seen = []

    class Rec(Callback):
        def after_step(self, state):
            seen.append((float(state.loss), state.per_sample_loss.clone()))

    Trainer(task, model, torch.optim.SGD(model.parameters(), lr=0.1), Schedule(epochs=1, batch_size=16), [Rec()],
            evaluate=False, measure_memory=False).fit()
    per_row = ((x @ w0.T).squeeze(-1) - data["labels"]) ** 2
    assert seen[0][0] == pytest.approx(float(per_row.mean()), rel=1e-6)
    grad = 2 * ((x @ w0.T).squeeze(-1) - data["labels"]) @ x / 16  # d mean squared error / dw
    assert torch.allclose(model.weight.detach(), w0 - 0.1 * grad, atol=1e-6)
