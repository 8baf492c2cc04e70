"""Resume after SIGKILL and K concurrent workers, with real processes (digits-mlp keeps these < 30 s)."""
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from leanfit.engine.store import open_storage
from leanfit.study.config import StudyConfig
from leanfit.study.runner import run_study


def _trials(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def _kill_mid_trial(cmd, env, url):
    """Start `leanfit search`, SIGKILL it once a trial finished and another is training; return the trial that
    was RUNNING when the process died (read after its death, so no race) or None."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                ts = _trials(url, "k")
            except Exception:  # study not created yet
                continue
            if any(t.state == TrialState.COMPLETE for t in ts) and any(
                    t.state == TrialState.RUNNING and "params" in t.user_attrs for t in ts):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    running = [t for t in _trials(url, "k") if t.state == TrialState.RUNNING]
    return (running[0] if running else None), proc.stdout.read().decode()


def test_sigkill_mid_trial_then_rerun_resumes(tmp_path, tiny_space):
    tiny_space["schedule"] = {"epochs": 4, "batch_size": 16}  # ~1 s per trial: wide window to kill mid-trial
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space))
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cmd = [sys.executable, "-m", "leanfit.cli", "search", str(space), "-n", "4", "--storage", url, "--study", "k",
           "--sampler", "random", "--no-stopper"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim, log = None, ""
    for _attempt in range(3):  # rarely the kill lands between two trials; then start again and kill again
        victim, log = _kill_mid_trial(cmd, env, url)
        if victim is not None:
            break
    assert victim is not None, f"never killed a running trial: {log[-2000:]}"
    before = {t.number: (t.values, t.datetime_complete) for t in _trials(url, "k") if t.state == TrialState.COMPLETE}
    assert before and victim.number not in before

    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    after = _trials(url, "k")
    by_num = {t.number: t for t in after}
    for n, (values, finished) in before.items():  # kept as they were: not re-run
        assert by_num[n].state == TrialState.COMPLETE and by_num[n].values == values
        assert by_num[n].datetime_complete == finished
    killed = by_num[victim.number]
    assert killed.state == TrialState.FAIL and "interrupted" in killed.user_attrs["fail_reason"]
    retry = [t for t in after if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == victim.params
    assert sum(t.state == TrialState.COMPLETE for t in after) == 4  # the study reached N
    assert len(after) == 5 and "retrying [" in out.stdout


def test_k_worker_processes_give_exactly_n_trials(tmp_path, tiny_space):
    url = f"journal:{tmp_path / 'study.journal'}"
    cfg = StudyConfig.from_space(tiny_space, n_trials=6, sampler="random", stopper=None)
    s = run_study(cfg, url, "par", workers=2, log=None)
    trials = _trials(url, "par")
    assert len(trials) == 6 and s.counts == {"COMPLETE": 6}
    assert sorted(t.number for t in trials) == list(range(6))
    ids = [t.user_attrs["result"]["recipe_id"] for t in trials]
    assert len(set(ids)) == 6, "no trial ran the same point twice"
    assert all(t.user_attrs["worker"]["pid"] != os.getpid() for t in trials)  # they ran in the workers
