"""Storage reliability (issue 14): every bad URL is a named error found before training, a cut journal tail is
repaired, the trial state is the truth, and concurrent first use of a SQLite file loses no run."""
import os
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from leanfit.engine.errors import LeanfitWarning, MissingExtraError, StorageError
from leanfit.engine.result import RunResult
from leanfit.engine.store import is_journal, load_runs, open_storage, repair_journal, save_run, storage_url, write_result


def _result(i=0, status="complete"):
    return RunResult(recipe={"task": "digits-mlp", "seed": i}, recipe_id=f"r{i}", task="digits-mlp", status=status,
                     metrics={"accuracy": 0.5 + i / 100}, costs={"train_flops": 1e6 * (i + 1)})


@pytest.mark.parametrize("url, kind, text", [
    ("notaurl", StorageError, "'notaurl' is not a storage URL. Fix: use sqlite:///path.db"),
    ("sqlite:////nonexistent-dir/x.db", StorageError, "the directory '/nonexistent-dir' does not exist"),
    ("sqlite:////proc/leanfit.db", StorageError, "cannot write next to the database"),
    ("journal:/nonexistent-dir/x.log", StorageError, "the directory '/nonexistent-dir' does not exist"),
    ("mysql://user:secret@localhost/db", MissingExtraError, "needs the database driver 'MySQLdb'"),
    ("nosuchdb://host/db", StorageError, "unknown database type"),
])
def test_bad_storage_urls_are_named_errors(url, kind, text):
    if kind is MissingExtraError and __import__("importlib").util.find_spec("MySQLdb"):
        pytest.skip("a MySQL driver is installed")
    with pytest.raises(kind) as e:
        open_storage(url)
    assert text in str(e.value) and "secret" not in str(e.value)


def test_postgresql_url_uses_psycopg2_when_it_is_the_only_driver():
    import importlib.util

    if importlib.util.find_spec("psycopg") or not importlib.util.find_spec("psycopg2"):
        pytest.skip("needs psycopg2 without psycopg 3")
    assert storage_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    with pytest.raises(StorageError, match=r"cannot be opened: .*Fix: check the URL, that the server is running"):
        open_storage("postgresql://u:pw@127.0.0.1:1/db")  # reaches the driver: psycopg2 says connection refused


def test_sqlite_url_ending_in_log_is_sqlite_not_a_journal(tmp_path):
    """Old code routed any URL ending in .log to the journal backend (creating a file named 'sqlite:')."""
    url = f"sqlite:///{tmp_path / 'runs.log'}"
    assert not is_journal(url) and is_journal(str(tmp_path / "runs.log")) and is_journal("journal:x")
    save_run(_result(), url)
    assert isinstance(open_storage(url), optuna.storages.RDBStorage)
    assert (tmp_path / "runs.log").read_bytes().startswith(b"SQLite format 3")


def test_corrupt_sqlite_file_is_a_named_error(tmp_path):
    (tmp_path / "x.db").write_bytes(os.urandom(4096))
    with pytest.raises(StorageError, match=r"is not a usable SQLite database \(file is not a database\)\. Fix:"):
        open_storage(f"sqlite:///{tmp_path / 'x.db'}")


def test_cut_journal_tail_is_repaired_with_a_warning(tmp_path):
    """A kill mid-write leaves a cut last line; Optuna appends the next record to it and then cannot read the
    file (JSONDecodeError) — before the repair, the third save_run below broke the journal for good."""
    path = str(tmp_path / "runs.log")
    save_run(_result(0), path)
    save_run(_result(1), path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 7)  # cut the last record (the tell of run 1)
    with pytest.warns(LeanfitWarning, match=r"its last record was cut .* removed \d+ bytes"):
        save_run(_result(2), path)
    runs = load_runs(path)
    assert [r.recipe_id for r in runs if r.status == "complete"] == ["r0", "r2"]
    assert repair_journal(path) == 0  # intact now: nothing to do, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_storage(path)


def test_load_runs_trusts_the_trial_state_not_the_result(storage_url):
    """Killed between writing the result and telling the state, then swept to FAIL: reported failed, never complete."""
    study = optuna.create_study(study_name="s", storage=open_storage(storage_url))
    t = study.ask()
    write_result(t, _result(0))  # status "complete" in the result attr...
    study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # ...but the sweep marked it FAIL
    running = study.ask()
    write_result(running, _result(1))  # mid-tell: not finished, not reported
    (r,) = load_runs(storage_url, "s")
    assert r.status == "failed" and "interrupted" in r.error
    assert load_runs(storage_url, "s", states=["complete"]) == []


_WRITER = """
import sys, time
from leanfit.engine.result import RunResult
from leanfit.engine.store import save_run
start, url, i = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
save_run(RunResult(recipe={}, recipe_id=f"r{i}", task="t", metrics={"accuracy": 0.5}), url)
"""


def test_concurrent_first_use_of_a_sqlite_file_stores_every_run(tmp_path):
    """8 processes write their first run to a fresh SQLite file at the same instant (3 rounds). Without the
    schema lock some died with `UNIQUE constraint failed: alembic_version` / `table ... already exists`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        start = time.time() + 4.0  # every process has imported optuna by then
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(start), url, str(i)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(8)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, "\n".join(o[-600:] for o in outs if o)
        assert sorted(r.recipe_id for r in load_runs(url)) == [f"r{i}" for i in range(8)]
