"""Truthful exit codes (issue 14): 0 ok, 1 a failed run, 2 bad input (one `error:` line, no traceback), 130 Ctrl-C;
storage and --out checked before training; a finished run is never lost to a storage failure."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import torch
import pytest
import yaml
from optuna.trial import TrialState

from leanfit.cli import run_cli
from leanfit.engine.errors import ALLOW_CODE_ENV

TINY = {"task": "digits-mlp", "adapter": "head_only", "schedule": {"epochs": 1, "batch_size": 128, "max_steps": 2}}


@pytest.fixture(autouse=True)
def _no_code_opt_in(monkeypatch):
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)  # --allow-code sets it for the process; undo it per test


def _recipe(tmp_path, d, name="r.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d) if isinstance(d, dict) else d)
    return str(p)


def _cli(capsys, *args):
    code = run_cli(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_exit_0_for_a_run_and_1_for_a_failed_run(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, out, err = _cli(capsys, "run", _recipe(tmp_path, TINY), "--storage", db)
    assert code == 0, err
    nan = {**TINY, "adapter": "full", "optimizer": {"name": "sgd", "lr": 1e30}}
    code, out, err = _cli(capsys, "run", _recipe(tmp_path, nan, "nan.yaml"), "--storage", db)
    assert code == 1 and "run failed: training loss became" in err  # old code: exit 0
    states = [t.state for t in optuna.load_study(study_name="leanfit-runs", storage=db).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]


@pytest.mark.parametrize("recipe, args, message", [
    ({**TINY, "optimizer": {"name": "adamw", "lr": float("inf")}}, [], "optimizer.lr must be a finite number"),
    ({**TINY, "optimizer": {"name": "adamw", "lr": True}}, [], "lr must be a number, but got True"),
    ({**TINY, "optimizer": {"name": "lion", "betas": [1.5, 0.9]}}, [], "betas must be 2 numbers in [0, 1)"),
    ({"task": {"name": "os:system", "command": "true"}}, [], "rerun with --allow-code"),
    (TINY, ["--storage", "notaurl"], "'notaurl' is not a storage URL"),
    (TINY, ["--storage", "sqlite:///{tmp}/x.log/no/such/dir/x.db"], "does not exist"),
    (TINY, ["--out", "{tmp}"], "--out must be a file path, but"),
    (TINY, ["--out", "{tmp}/no/such/dir/r.json"], "--out must be in an existing directory"),
    ("{not json", [], "not valid JSON"),
    ("task: [", [], "not valid YAML"),
])
def test_exit_2_for_bad_input_with_one_error_line(tmp_path, capsys, recipe, args, message):
    name = "r.json" if recipe == "{not json" else "r.yaml"
    path = _recipe(tmp_path, recipe, name)
    code, out, err = _cli(capsys, "run", path, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and message in err and err.startswith("error: ") and "Traceback" not in out + err


def test_storage_and_out_are_checked_before_training(tmp_path, capsys, monkeypatch):
    """Old code trained first and then threw the finished run away on `--storage notaurl`."""
    import leanfit.engine.run

    monkeypatch.setattr(leanfit.engine.run, "train_recipe", lambda *a, **k: pytest.fail("trained before checking"))
    assert _cli(capsys, "run", _recipe(tmp_path, TINY), "--storage", "notaurl")[0] == 2
    assert _cli(capsys, "run", _recipe(tmp_path, TINY), "--out", str(tmp_path))[0] == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    code, _, err = _cli(capsys, "run", _recipe(tmp_path, TINY), "--save", str(tmp_path / "full"))
    assert code == 2 and "is not empty" in err and (tmp_path / "full" / "x.txt").read_text() == "keep me"
    code, _, err = _cli(capsys, "run", _recipe(tmp_path, TINY), "--save", _recipe(tmp_path, TINY, "file.yaml"))
    assert code == 2 and "must name a folder" in err
    assert _cli(capsys, "run", str(tmp_path))[0] == 2  # a folder as the recipe


@pytest.mark.parametrize("with_out", [True, False])
def test_a_storage_failure_after_training_keeps_the_result_in_a_file(tmp_path, capsys, monkeypatch, with_out):
    import leanfit.engine.store

    def broken(*a, **k):
        raise RuntimeError("database is locked")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(leanfit.engine.store, "save_run", broken)
    out = ["--out", str(tmp_path / "r.json")] if with_out else []
    code, _, err = _cli(capsys, "run", _recipe(tmp_path, TINY), "--storage", f"sqlite:///{tmp_path / 'x.db'}", *out)
    assert code == 2 and "storing it in" in err and "database is locked" in err
    saved = tmp_path / "r.json" if with_out else next(tmp_path.glob("leanfit-run-*.json"))
    assert f"The RunResult is safe in {saved}" in err
    assert json.loads(saved.read_text())["status"] == "complete"


def test_run_save_writes_a_model_that_predicts_like_the_trained_one(tmp_path, capsys):
    """`leanfit run --save DIR` then `leanfit evaluate DIR`: the saved model scores the test split exactly as the
    run reported it."""
    recipe = {**TINY, "schedule": {"epochs": 1, "batch_size": 64, "max_steps": 20}}
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, out, err = _cli(capsys, "run", _recipe(tmp_path, recipe), "--storage", db, "--out", str(tmp_path / "r.json"),
                          "--save", str(tmp_path / "model"))
    assert code == 0, err
    assert "saved the trained model" in out
    result = json.loads((tmp_path / "r.json").read_text())
    manifest = json.loads((tmp_path / "model" / "leanfit.json").read_text())
    assert manifest["test"] == result["test_metrics"] and result["test_metrics"]["accuracy"] > 0.3
    from leanfit.engine.task import build_task
    from leanfit.workflows.predict import load

    task = build_task("digits-mlp")
    x = task.batch("test", torch.arange(task.n_rows("test")))
    raw = x["x"] * torch.tensor(manifest["input_std"]) + torch.tensor(manifest["input_mean"])  # users pass raw rows
    pred = load(tmp_path / "model").logits(raw.tolist()).argmax(-1)
    assert (pred == x["labels"]).float().mean().item() == pytest.approx(result["test_metrics"]["accuracy"])


def test_other_commands_exit_2_on_bad_input(tmp_path, capsys):
    db = tmp_path / "x.db"
    db.write_bytes(os.urandom(2048))
    code, _, err = _cli(capsys, "report", "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "rep"))
    assert code == 2 and "is not a usable SQLite database" in err
    space = _recipe(tmp_path, {"task": "digits-mlp", "adapter": {"head_only": {}}}, "space.yaml")
    good = f"sqlite:///{tmp_path / 'ok.db'}"
    code, _, err = _cli(capsys, "search", space, "--join", "--study", "nosuch", "--storage", good)
    assert code == 2 and "study 'nosuch' does not exist" in err  # old code: created an empty study, exit 0
    assert optuna.get_all_study_summaries(good) == []
    code, _, err = _cli(capsys, "lr-find", _recipe(tmp_path, TINY), "--plot", str(tmp_path))
    assert code == 2 and "--plot must be a file path" in err


def test_an_internal_error_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import leanfit.engine.recipe

    def bug(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(leanfit.engine.recipe.Recipe, "load", bug)
    code, out, err = _cli(capsys, "run", _recipe(tmp_path, TINY))
    assert code == 1 and err.startswith("error: internal error (ZeroDivisionError") and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        run_cli(["--debug", "run", _recipe(tmp_path, TINY)])


# ---- Ctrl-C in real processes ---------------------------------------------------------------------------------
def _interrupt_when(cmd, ready, timeout=120):
    """Start cmd, send SIGINT once ``ready(output so far)`` holds, return (exit code, output)."""
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "OMP_NUM_THREADS": "1"}  # live progress bar
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: [chunks.append(c) for c in iter(lambda: proc.stdout.read1(4096), b"")])
    reader.start()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready(b"".join(chunks).decode(errors="replace")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    reader.join()
    return code, b"".join(chunks).decode(errors="replace")


LONG = {"task": "digits-mlp", "adapter": "head_only", "schedule": {"epochs": 400, "batch_size": 8}}


def test_ctrl_c_in_run_stores_the_partial_run_and_exits_130(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    cmd = [sys.executable, "-m", "leanfit.cli", "run", _recipe(tmp_path, LONG), "--storage", db]
    code, out = _interrupt_when(cmd, lambda o: "loss " in o)
    assert code == 130, out[-2000:]  # old code: exit 0, no message
    assert "interrupted: the partial run is stored as failed" in out and "Traceback" not in out
    (t,) = optuna.load_study(study_name="leanfit-runs", storage=db).trials
    res = t.user_attrs["result"]
    assert t.state == TrialState.FAIL and res["status"] == "failed" and res["error"] == "interrupted"
    assert 0 < res["costs"]["steps"] < 400 * 180


def test_ctrl_c_in_search_exits_130_and_the_trial_is_retried_later(tmp_path):
    space = {**{k: v for k, v in LONG.items() if k != "adapter"}, "adapter": {"head_only": {}}}
    url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, "-m", "leanfit.cli", "search", _recipe(tmp_path, space), "-n", "2", "--storage", url,
           "--study", "c", "--no-stopper"]

    def training(_output):
        try:
            return any(t.state == TrialState.RUNNING and "claimed_at" in t.user_attrs
                       for t in optuna.load_study(study_name="c", storage=url).trials)
        except KeyError:  # the study is not created yet
            return False

    code, out = _interrupt_when(cmd, training)
    assert code == 130, out[-2000:]  # old code: exit 0
    assert "interrupted: rerun the same command to resume" in out and "Traceback" not in out
    (t,) = optuna.load_study(study_name="c", storage=url).get_trials(states=(TrialState.FAIL,))
    assert t.user_attrs["fail_reason"].startswith("interrupted")


def test_usage_errors_exit_2_and_ctrl_c_anywhere_exits_130(tmp_path, capsys, monkeypatch):
    code, _, err = _cli(capsys, "run", _recipe(tmp_path, TINY), "--bogus")
    assert code == 2 and "No such option: --bogus" in err  # typer's own exception classes, not click's
    assert _cli(capsys, "nosuch")[0] == 2
    import leanfit.engine.recipe

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(leanfit.engine.recipe.Recipe, "load", ctrl_c)
    code, _, err = _cli(capsys, "run", _recipe(tmp_path, TINY))
    assert code == 130 and "interrupted (Ctrl-C)." in err
