import itertools
import math
import random

import pytest

from leanfit.engine.errors import ConfigError
from leanfit.engine.recipe import Recipe
from leanfit.study.stopper import MemoryRungBoard, StopperConfig, TrialStopper, promotable, rung_of
from leanfit.engine.run import run_recipe


def _reference_promotable(value, values, eta, min_trials):
    """ASHA (arXiv 1810.05934, Alg. 2) written out: a config is promotable iff it is among the top ⌊n/η⌋ of its
    rung (we also let the best one through when n < η, and everyone while n < min_trials)."""
    if len(values) < min_trials:
        return True
    n_keep = max(1, len(values) // eta)
    better = sum(v > value for v in values)  # rank 0 = best; ties share the better rank
    return better < n_keep


def test_promotable_matches_the_asha_rule():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 12)
        values = [round(rng.random(), 1) for _ in range(n)]  # rounding makes ties
        eta, mt = rng.choice([2, 3, 4]), rng.choice([1, 3])
        for v in values:
            assert promotable(v, values, eta, mt) == _reference_promotable(v, values, eta, mt)


def test_rung_of_is_log_eta():
    assert rung_of(99, 100, 3) == -1
    assert [rung_of(r, 100, 3) for r in (100, 299, 300, 899, 900, 2700)] == [0, 0, 1, 1, 2, 3]


def test_config_validation():
    with pytest.raises(ConfigError, match=r"stopper.resource must be one of \('samples', 'flops'\)"):
        StopperConfig(resource="epochs")
    with pytest.raises(ConfigError, match=r"stopper.reduction_factor must be an integer ≥ 2, but got 1"):
        StopperConfig(reduction_factor=1)


def _recipe(lr):
    return Recipe.from_dict({"task": "digits-mlp", "adapter": "head_only", "optimizer": {"name": "adamw", "lr": lr},
                             "schedule": {"epochs": 1, "batch_size": 128, "eval_every": 3}})


def test_bad_trial_is_stopped_as_pruned_with_its_partial_curve():
    board = MemoryRungBoard()
    cfg = StopperConfig(resource="samples", min_resource=384, reduction_factor=2, min_trials=2)
    full = [run_recipe(_recipe(lr), callbacks=[TrialStopper(cfg, board)]) for lr in (3e-2, 1e-2)]
    assert full[0].status == "complete"  # alone at its rungs: always continues
    # a hopeless learning rate: behind both earlier trials at the first rung → stopped there
    bad = TrialStopper(cfg, board)
    r = run_recipe(_recipe(1e-6), callbacks=[bad])
    assert r.status == "pruned" and "successive halving" in r.extra["stop_reason"]
    assert bad.decisions and bad.decisions[-1][2] is False
    assert r.costs["samples_seen"] < 1259 and r.curve and r.curve[-1]["samples"] == r.costs["samples_seen"]
    assert r.metrics["accuracy"] == r.curve[-1]["accuracy"]  # metric = where it was stopped, no final eval
    assert board.values(0)[-1] == pytest.approx(r.curve[0]["accuracy"])


def test_a_finished_run_is_never_marked_pruned():
    """The final eval (after on_fit_end) only records rung values: a run that trained to the end is complete."""
    board = MemoryRungBoard()
    board.rungs = {k: [1.0, 1.0, 1.0] for k in range(4)}  # everyone else was perfect at every rung
    cfg = StopperConfig(resource="samples", min_resource=10_000, reduction_factor=3, min_trials=1)
    r = run_recipe(_recipe(1e-2), callbacks=[TrialStopper(cfg, board)])  # 1259 samples < first rung
    assert r.status == "complete"
    cfg2 = StopperConfig(resource="samples", min_resource=1259, reduction_factor=3, min_trials=1)
    s = TrialStopper(cfg2, board)
    r2 = run_recipe(_recipe(1e-6), callbacks=[s])  # reaches rung 0 only at its last step
    assert r2.status == "complete" and s.decisions == []
    assert board.values(0)[-1] == pytest.approx(r2.curve[-1]["accuracy"])


def test_flops_rungs_and_auto_min_resource():
    board = MemoryRungBoard()
    s = TrialStopper(StopperConfig(resource="flops", reduction_factor=2, min_trials=1), board)
    assert s.observe(1e6, 0.5) is True  # first observation fixes r0 = 1e6
    assert board.min_resource(123.0) == 1e6
    assert s.observe(2.5e6, 0.6) is True and board.values(1) == [0.6]
    s2 = TrialStopper(StopperConfig(resource="flops", reduction_factor=2, min_trials=1), board)
    assert s2.observe(1e6, 0.4) is False  # worse than 0.5 at rung 0, with ⌊2/2⌋ = 1 kept


def test_eval_loss_rungs_keep_the_lowest_loss_and_name_the_loss():
    """On LM curves exact match is often 0 for everyone early on; rungs on eval_loss keep the *lowest* loss
    (old code: only ↑ metrics, so a loss would have kept the worst trial)."""
    from types import SimpleNamespace

    cfg = StopperConfig(resource="samples", min_resource=10, reduction_factor=2, min_trials=2, metric="eval_loss")
    board = MemoryRungBoard()
    for loss in (1.0, 2.0):  # two earlier trials at rung 0
        TrialStopper(cfg, board).observe(10, -loss)
    stops = []

    def state(loss):
        return SimpleNamespace(samples_seen=10, flops=0.0, step=1, planned_steps=100, metrics={"eval_loss": loss},
                               stop=lambda reason, pruned: stops.append(reason))

    TrialStopper(cfg, board).on_eval(state(0.5))  # best loss so far: kept
    assert stops == []
    TrialStopper(cfg, board).on_eval(state(3.0))  # worst: stopped, and the message shows the loss itself
    assert len(stops) == 1 and "eval_loss 3.0000" in stops[0]
    with pytest.raises(ConfigError, match="stopper.metric must be one of"):
        StopperConfig(metric="loss")
