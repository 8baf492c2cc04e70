"""Resume and --join never train the same point twice (issue 14): per-trial sampler seeds, twins over COMPLETE,
PRUNED and RUNNING trials, interrupted result writes retried, and --join of an unknown study refused."""
import os
import socket
import subprocess
import sys
import threading
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from leanfit.engine.errors import UnknownNameError
from leanfit.engine.recipe import Recipe
from leanfit.engine.result import RunResult
from leanfit.engine.store import open_storage, write_result
from leanfit.study.config import StudyConfig, open_study, trial_seed
from leanfit.study.queue import sweep_stale, top_up
from leanfit.study.runner import run_study
from leanfit.study.trial import claim

ONE_POINT = {"task": "digits-mlp", "schedule": {"epochs": 1, "batch_size": 128}, "adapter": {"head_only": {}},
             "optimizer": {"adamw": {"lr": 1e-2}}}


def _fake(recipe, status="complete"):
    return RunResult(recipe=recipe.to_dict(), recipe_id=recipe.id, task="digits-mlp", status=status,
                     metrics={"accuracy": 0.4}, costs={"train_flops": 1e6, "trainable_params": 10, "total_params": 100})


def _trials(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def test_a_pruned_twin_is_reused_as_pruned_not_trained_again(storage_url):
    """Old code looked only at COMPLETE twins, so a point the stopper had stopped was trained again."""
    calls = []

    def run_fn(recipe, callbacks=()):
        calls.append(recipe.id)
        return _fake(recipe, status="pruned")

    cfg = StudyConfig.from_space(ONE_POINT, n_trials=2, sampler="random", stopper=None)
    run_study(cfg, storage_url, "p", run_fn=run_fn, log=None)
    t0, t1 = _trials(storage_url, "p")
    assert len(calls) == 1
    assert t0.state == t1.state == TrialState.PRUNED and t1.user_attrs["duplicate_of"] == 0


def test_a_kill_between_result_and_state_is_retried(storage_url, tiny_space):
    """Old code counted a FAIL trial with a (complete) result attr as done: never retried, and the report listed
    it as complete."""
    cfg = StudyConfig.from_space(tiny_space, n_trials=1, sampler="random", stopper=None)
    study = open_study(storage_url, "k", cfg)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    t = study.ask()
    t.suggest_categorical("adapter", ["lora", "head_only", "full"])
    t.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid})
    write_result(t, _fake(Recipe.from_dict({"task": "digits-mlp"})))  # the result is written; the process dies before study.tell
    assert sweep_stale(study) == [t.number]
    assert top_up(study, 1) == ([t.number], 0)


def test_a_resumed_search_draws_new_points(storage_url):
    """Old code seeded the sampler by worker only: after a kill, the first fresh trial of the rerun repeated the
    interrupted trial's point."""
    space = {**ONE_POINT, "optimizer": {"adamw": {"lr": {"log": [1e-4, 1e-1]}}}}

    def interrupted(recipe, callbacks=()):
        raise KeyboardInterrupt

    cfg = StudyConfig.from_space(space, n_trials=1, sampler="random", stopper=None)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, storage_url, "r", run_fn=interrupted, log=None)
    cfg = StudyConfig.from_space(space, n_trials=2, sampler="random", stopper=None)
    run_study(cfg, storage_url, "r", run_fn=lambda r, callbacks=(): _fake(r), log=None)
    killed, retry, fresh = _trials(storage_url, "r")
    assert retry.user_attrs["retry_of"] == killed.number and retry.params == killed.params
    assert fresh.params != killed.params
    assert fresh.user_attrs["sampler_seed"] == trial_seed(0, fresh.number) != trial_seed(0, killed.number)


def _running_twin(study, recipe_id, claimed_at):
    t = study.ask()
    t.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getppid()})  # a live process
    t.set_user_attr("heartbeat", time.time())
    t.set_user_attr("recipe_id", recipe_id)
    t.set_user_attr("claimed_at", claimed_at)
    return t


def test_claim_waits_for_a_running_twin_that_claimed_first(storage_url):
    study = optuna.create_study(study_name="c", storage=open_storage(storage_url))
    first = _running_twin(study, "abc", time.time() - 1)
    me = study.ask()

    def finish():
        time.sleep(1.5)
        first.set_user_attr("result", {"status": "complete"})
        study.tell(first, 0.5)

    threading.Thread(target=finish).start()
    t0 = time.time()
    twin = claim(study, me, "abc", poll_s=0.2)
    assert twin.number == first.number and time.time() - t0 >= 1.0  # waited, then reused


def test_claim_does_not_wait_for_a_later_claim_or_a_dead_worker(storage_url):
    study = optuna.create_study(study_name="d", storage=open_storage(storage_url))
    me = study.ask()
    later = _running_twin(study, "abc", time.time() + 60)  # claimed after me: it waits for me, not I for it
    assert claim(study, me, "abc", poll_s=0.2) is None and later.number != me.number
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = _running_twin(study, "xyz", time.time() - 60)
    ghost.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid})
    assert claim(study, study.ask(), "xyz", poll_s=0.2) is None


def test_join_of_an_unknown_study_is_refused_and_creates_nothing(storage_url, tiny_space):
    cfg = StudyConfig.from_space(tiny_space, n_trials=1, stopper=None)
    open_study(storage_url, "real", cfg)
    with pytest.raises(UnknownNameError, match=r"unknown study 'nosuch'\..*Valid study names: real\."):
        run_study(cfg, storage_url, "nosuch", join=True, log=None)
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(storage_url))] == ["real"]


def test_two_identical_searches_started_at_once_never_train_a_point_twice(tmp_path):
    """Old code: both processes seeded the sampler alike and only COMPLETE twins counted, so #0 and #1 trained
    the same point side by side. Two points, two processes, six trials: each point trains exactly once."""
    space = {**ONE_POINT, "optimizer": {"adamw": {"lr": [1e-3, 1e-2]}}, "schedule": {"epochs": 3, "batch_size": 32}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, "-m", "leanfit.cli", "search", str(tmp_path / "space.yaml"), "-n", "6", "--storage", url,
           "--study", "twins", "--sampler", "random", "--no-stopper"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-1500:] for o in outs)
    trials = _trials(url, "twins")
    trained = [t.user_attrs["recipe_id"] for t in trials if "result" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 2
    assert all(t.state == TrialState.COMPLETE for t in trials)
