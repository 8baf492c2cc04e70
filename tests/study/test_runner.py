import json
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from leanfit.engine.errors import ConfigError, UnknownNameError
from leanfit.engine.store import load_runs, open_storage
from leanfit.study.config import StudyConfig, open_study
from leanfit.study.queue import sweep_stale, top_up
from leanfit.study.runner import run_study


def _cfg(space, **kw):
    kw.setdefault("n_trials", 6)
    return StudyConfig.from_space(space, **kw)


def test_study_reaches_n_trials_and_tells_pruned_trials_pruned(tiny_space, storage_url):
    tiny_space["stopper"] = {"resource": "samples", "min_resource": 512, "reduction_factor": 2, "min_trials": 2}
    cfg = _cfg(tiny_space, n_trials=8, sampler="random", objectives="accuracy,train_flops,trainable_params")
    s = run_study(cfg, storage_url, "s", log=None)
    assert s.ran == 8 and s.enqueued == 8
    study = optuna.load_study(study_name="s", storage=open_storage(storage_url))
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.PRUNED for t in trials), "a 2-rung halving over 8 trials stops someone"
    for t in trials:
        res = t.user_attrs["result"]
        if t.state == TrialState.PRUNED:  # partial curve kept, never told COMPLETE
            assert res["status"] == "pruned" and res["curve"] and t.values is None
            assert res["costs"]["samples_seen"] < 1259
        else:
            assert res["status"] == "complete"
            assert t.values == [res["metrics"]["accuracy"], res["costs"]["train_flops"],
                                res["costs"]["trainable_params"]]
        assert "sh_rung_0" in t.user_attrs
    assert len(load_runs(storage_url, "s")) == 8


def test_budgets_become_optuna_constraints(tiny_space, storage_url):
    cfg = _cfg(tiny_space, n_trials=4, sampler="random", budgets=["trainable_fraction<=20%"], stopper=None)
    run_study(cfg, storage_url, "b", log=None)
    for t in optuna.load_study(study_name="b", storage=open_storage(storage_url)).get_trials():
        res = t.user_attrs["result"]["costs"]
        frac = res["trainable_params"] / res["total_params"]
        assert t.user_attrs["constraint"] == [pytest.approx(frac - 0.2)]
        assert t.system_attrs["constraints:trainable_fraction"] == pytest.approx(frac - 0.2)


def test_grid_sampler_visits_each_point_once(tiny_space, storage_url):
    tiny_space["adapter"] = {"head_only": {}, "full": {}}
    tiny_space["optimizer"] = {"adamw": {"lr": [1e-3, 1e-2]}}
    cfg = _cfg(tiny_space, n_trials=4, sampler="grid", stopper=None)
    run_study(cfg, storage_url, "g", log=None)
    runs = load_runs(storage_url, "g")
    assert sorted((r.recipe["adapter"]["name"], r.recipe["optimizer"]["lr"]) for r in runs) == [
        ("full", 1e-3), ("full", 1e-2), ("head_only", 1e-3), ("head_only", 1e-2)]


def test_stale_running_trial_is_failed_and_retried_with_same_params(tiny_space, storage_url):
    cfg = _cfg(tiny_space, n_trials=3, sampler="random", stopper=None)
    study = open_study(storage_url, "r", cfg)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    t = study.ask()
    t.suggest_categorical("adapter", ["lora", "head_only", "full"])
    t.set_user_attr("worker", {"host": __import__("socket").gethostname(), "pid": dead.pid})
    live = study.ask()  # RUNNING, fresh heartbeat, live pid (this process' parent) → left alone
    live.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    live.set_user_attr("heartbeat", __import__("time").time())
    assert sweep_stale(study, stale_after_s=600) == [t.number]
    states = {x.number: x.state for x in study.get_trials()}
    assert states[t.number] == TrialState.FAIL and states[live.number] == TrialState.RUNNING
    retried, fresh = top_up(study, 3)
    assert retried == [t.number] and fresh == 1  # 3 = 1 running + 1 retry + 1 fresh
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 2 and waiting[0].user_attrs["retry_of"] == t.number
    assert waiting[0].system_attrs["fixed_params"] == t.params and "retry_of" not in waiting[1].user_attrs
    assert top_up(study, 3) == ([], 0)  # idempotent: running + waiting already make up the rest
    assert sweep_stale(study, stale_after_s=0.0) == [live.number]  # other host: stale once the heartbeat is old


def test_resuming_with_a_different_space_is_refused(tiny_space, storage_url):
    open_study(storage_url, "x", _cfg(tiny_space))
    tiny_space["optimizer"] = ["adamw"]
    with pytest.raises(ConfigError, match=r"already exists with a different space"):
        open_study(storage_url, "x", _cfg(tiny_space))
    with pytest.raises(UnknownNameError, match=r"unknown sampler 'tpee'.*'tpe'"):
        _cfg(tiny_space, sampler="tpee")


def test_a_completed_recipe_is_not_trained_twice(tiny_space, storage_url):
    tiny_space["adapter"] = {"head_only": {}}
    tiny_space["optimizer"] = {"adamw": {"lr": [1e-3, 1e-2]}}  # 2 points, 5 trials: ≥ 3 repeats
    calls = []

    def run_fn(recipe, callbacks=()):
        from leanfit.engine.run import run_recipe

        calls.append(recipe.id)
        return run_recipe(recipe, callbacks=callbacks)

    cfg = _cfg(tiny_space, n_trials=5, sampler="random", stopper=None)
    run_study(cfg, storage_url, "d", run_fn=run_fn, log=None)
    trials = optuna.load_study(study_name="d", storage=open_storage(storage_url)).get_trials()
    assert len(calls) == len(set(calls)) <= 2 and len(trials) == 5
    dups = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(dups) == 5 - len(calls)
    for t in dups:
        twin = trials[t.user_attrs["duplicate_of"]]
        assert t.values == twin.values and t.user_attrs["recipe_id"] == twin.user_attrs["recipe_id"]


def test_deadline_leaves_the_queue_for_a_rerun_and_nsga2_by_name(tiny_space, storage_url):
    import time

    cfg = _cfg(tiny_space, n_trials=3, sampler="nsga2", deadline=time.time() - 1)  # budget already spent
    s = run_study(cfg, storage_url, "t", log=None)
    assert s.ran == 0 and s.counts == {"WAITING": 3}
    s = run_study(_cfg(tiny_space, n_trials=3, sampler="nsga2"), storage_url, "t", log=None)
    assert s.ran == 3 and s.enqueued == 0 and sum(s.counts.values()) == 3 and "WAITING" not in s.counts


def test_ctrl_c_mid_trial_is_failed_then_retried(tiny_space, storage_url):
    def interrupted(recipe, callbacks=()):
        raise KeyboardInterrupt

    cfg = _cfg(tiny_space, n_trials=2, sampler="random", stopper=None)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, storage_url, "c", run_fn=interrupted, log=None)
    s = run_study(cfg, storage_url, "c", log=None)
    trials = optuna.load_study(study_name="c", storage=open_storage(storage_url)).get_trials()
    assert s.retried == [0] and [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                                              TrialState.COMPLETE]
    assert trials[2].user_attrs["retry_of"] == 0 and trials[2].params == trials[0].params
