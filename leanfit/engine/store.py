"""Store: every run — single or in a study — is an Optuna trial, so ``optuna-dashboard <url>`` shows our data.

- ``sqlite:///leanfit.db`` (default), any SQLAlchemy URL (``postgresql://user:pw@host/db``) → RDBStorage;
- ``journal:PATH``, or a plain path (no ``://``) ending in ``.log``/``.journal`` → JournalStorage with a file
  backend (several processes on one host without a database server).

This module is the one place storage URLs are handled. ``open_storage`` checks a URL completely before anything
trains: a malformed URL, a missing directory, a missing database driver or a corrupt database file is a named
``StorageError`` / ``MissingExtraError`` up front, never a traceback after a finished run. It also makes first use
safe under concurrency (SQLite schema creation is serialised with a file lock) and repairs a journal whose last
record was cut by a kill.

The RunResult is stored whole as the trial user attr ``result`` (JSON); headline numbers are also flattened into
user attrs so the dashboard can chart them. The trial's *state* is the truth: ``load_runs`` never reports a trial
as complete unless Optuna recorded it COMPLETE.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from typing import Any, Iterable, Iterator

from .errors import LeanfitWarning, MissingExtraError, StorageError
from .result import COST_KEYS, RunResult

DEFAULT_STORAGE = "sqlite:///leanfit.db"
RUNS_STUDY = "leanfit-runs"
JOURNAL_SUFFIXES = (".log", ".journal")
URL_FORMS = "sqlite:///path.db, journal:path.log or postgresql://user:pw@host/db"
DRIVER_HINTS = {"MySQLdb": "pip install mysqlclient (or pip install PyMySQL and use mysql+pymysql://...)",
                "pymysql": "pip install PyMySQL", "psycopg2": 'pip install "leanfit[postgres]"',
                "psycopg": 'pip install "psycopg[binary]" (or "leanfit[postgres]" for psycopg2)'}


def storage_url(url: str | None) -> str:
    """The one place storage URLs are normalised and checked for form: default, ``postgres://`` →
    ``postgresql://``, and ``postgresql://`` → ``postgresql+psycopg2://`` when only psycopg2 is installed
    (SQLAlchemy ≥ 2.1 defaults to the psycopg 3 driver). Anything that is neither a ``scheme://`` URL nor a
    journal path is a StorageError."""
    url = url or DEFAULT_STORAGE
    if not isinstance(url, str):
        raise StorageError(f"storage must be a URL string, but got {type(url).__name__}. Fix: use {URL_FORMS}.")
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if not (is_journal(url) or re.match(r"^[A-Za-z][A-Za-z0-9+._-]*://", url)):
        raise StorageError(f"storage {url!r} is not a storage URL. Fix: use {URL_FORMS}.")
    return url


def is_journal(url: str) -> bool:
    """``journal:PATH``, or a plain file path ending in .log/.journal (never a ``scheme://`` URL such as
    ``sqlite:///runs.log``, which is an SQLite file whatever its name)."""
    return url.startswith("journal:") or ("://" not in url and url.endswith(JOURNAL_SUFFIXES))


def open_storage(url: Any = None) -> Any:
    """An Optuna storage for a URL, opened and checked now (an already open storage is returned as it is)."""
    if url is not None and not isinstance(url, str):
        return url
    url = storage_url(url)
    if is_journal(url):
        return _open_journal(url.removeprefix("journal:"))
    return _open_rdb(url)


# ---- journal files ----------------------------------------------------------------------------------------------
def _open_journal(path: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    _check_dir(path, f"journal:{path}")
    if os.path.isdir(path):
        raise StorageError(f"storage journal:{path} must be a file, but {path!r} is a directory. "
                           f"Fix: use journal:{os.path.join(path, 'leanfit.log')}.")
    repair_journal(path)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    except (ValueError, OSError) as e:  # a record in the middle is corrupt: not ours to guess
        raise StorageError(f"storage journal:{path} cannot be read: {e}. Fix: restore the file from a backup, "
                           "or start a new journal file.") from None


def repair_journal(path: str) -> int:
    """Truncate a journal file to its last complete record (a kill mid-write leaves a cut line, which Optuna
    would later join with the next record and then fail to parse). Returns the bytes removed (0: intact).
    Checked without the lock first; repaired under Optuna's own journal lock so no writer is mid-record."""
    if not os.path.exists(path) or _last_good_offset(path) == os.path.getsize(path):
        return 0
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        size, good = os.path.getsize(path), _last_good_offset(path)
        if good < size:
            with open(path, "r+b") as f:
                f.truncate(good)
            warnings.warn(f"journal {path}: its last record was cut (a process was killed while writing); removed "
                          f"{size - good} bytes so it is readable again. The trial being written is retried on "
                          f"resume.", LeanfitWarning, stacklevel=2)
        return size - good
    finally:
        lock.release()


def _last_good_offset(path: str) -> int:
    """End offset of the last complete, parseable record (the file size when the tail is intact)."""
    with open(path, "rb") as f:
        good = f.seek(0, os.SEEK_END)
        while good > 0:
            start = _previous_newline(f, good - 1) + 1  # the last line is [start, good)
            f.seek(good - 1)
            if f.read(1) == b"\n":
                f.seek(start)
                try:
                    json.loads(f.read(good - start))
                    return good
                except ValueError:
                    pass
            good = start  # a cut or unparseable last line: drop it and look at the one before
        return 0


def _previous_newline(f: Any, pos: int, chunk: int = 1 << 16) -> int:
    """Index of the last b"\\n" strictly before ``pos`` (-1 if none); reads backwards in chunks."""
    end = pos
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        i = f.read(end - start).rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


# ---- SQLAlchemy databases ---------------------------------------------------------------------------------------
def _open_rdb(url: str) -> Any:
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"storage {url!r} is not a valid database URL ({e}). Fix: use {URL_FORMS}.") from None
    shown = parsed.render_as_string(hide_password=True)
    db = parsed.database if parsed.get_backend_name() == "sqlite" else None
    file_db = bool(db) and db != ":memory:" and not db.startswith("file:")
    if file_db:
        _check_dir(db, shown)
    kwargs = {"connect_args": {"timeout": 60}} if parsed.get_backend_name() == "sqlite" else {}
    try:
        with _file_lock(db + ".lock" if file_db else None, shown):  # schema creation, once per file
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)
    except ImportError as e:
        name = _missing_module(e)
        raise MissingExtraError(f"storage {shown} needs the database driver {name!r}, which is not installed. "
                                f"Fix: {DRIVER_HINTS.get(name, f'pip install {name}')}") from None
    except sqlalchemy.exc.NoSuchModuleError as e:
        raise StorageError(f"storage {shown}: unknown database type ({e}). Fix: use {URL_FORMS}.") from None
    except sqlalchemy.exc.DatabaseError as e:
        raise _database_error(shown, db if file_db else None, e) from None
    except RuntimeError as e:  # Optuna: schema of another Optuna version
        raise StorageError(f"storage {shown} cannot be used: {str(e).splitlines()[0]} "
                           f"Fix: run `optuna storage upgrade --storage {shown}`, or use a new database.") from None
    if parsed.get_backend_name() == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _missing_module(e: BaseException) -> str:
    """The module name of an ImportError, looking through the chain (Optuna re-raises the driver's own)."""
    while e is not None:
        if getattr(e, "name", None):
            return e.name.split(".")[0]
        e = e.__cause__ or e.__context__
    return "the driver"


def _database_error(shown: str, db: str | None, e: Exception) -> StorageError:
    first = str(getattr(e, "orig", e)).splitlines()[0]
    if db and ("not a database" in first or "malformed" in first):
        return StorageError(f"storage {shown}: {db!r} is not a usable SQLite database ({first}). Fix: point "
                            f"--storage at a leanfit/Optuna database, or move the damaged file away and rerun.")
    return StorageError(f"storage {shown} cannot be opened: {first}. Fix: check the URL, that the server is "
                        "running and reachable, and the credentials.")


def _check_dir(path: str, shown: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise StorageError(f"storage {shown}: the directory {parent!r} {what}. Fix: create it (mkdir -p) or choose "
                           "another --storage.")


@contextlib.contextmanager
def _file_lock(path: str | None, shown: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (a no-op without a path or on systems without fcntl). Four `leanfit run`
    on a fresh SQLite file otherwise race to create the schema (measured: 1 of 4 runs lost to ``UNIQUE constraint
    failed: alembic_version`` / ``table ... already exists``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    try:
        f = open(path, "a")
    except OSError as e:
        raise StorageError(f"storage {shown}: cannot write next to the database ({e.strerror}: {path!r}). Fix: "
                           "choose a writable directory for --storage.") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _serialize_sqlite(engine: Any) -> None:
    """Make every SQLite transaction take the write lock at BEGIN (``BEGIN IMMEDIATE``).

    SQLite ignores Optuna's ``SELECT … FOR UPDATE``, so with pysqlite's deferred transactions two worker processes
    can both read a trial as WAITING and both move it to RUNNING: the same trial ran twice (measured: 4 processes
    popping 300 queued trials took 323–329). Serialising transactions makes the WAITING→RUNNING hand-over atomic,
    as it is on PostgreSQL. The SQLAlchemy recipe for pysqlite: let SQLAlchemy, not the driver, emit BEGIN."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# ---- runs as trials ---------------------------------------------------------------------------------------------
def result_attrs(result: RunResult) -> dict[str, Any]:
    """User attrs for a trial: the whole result plus flat headline numbers."""
    attrs: dict[str, Any] = {"result": result.to_dict(), "recipe_id": result.recipe_id, "task": result.task,
                             "status": result.status, "label": result.label}
    attrs.update({k: v for k, v in result.metrics.items()})
    attrs.update({f"test_{k}": v for k, v in result.test_metrics.items()})
    if result.flags:
        attrs["flags"] = list(result.flags)
    attrs.update({k: result.costs[k] for k in COST_KEYS if k in result.costs})
    return attrs


def write_result(trial: Any, result: RunResult) -> None:
    from .result import _json_default

    for k, v in result_attrs(result).items():
        trial.set_user_attr(k, json.loads(json.dumps(v, default=_json_default)))


def runs_study(storage: Any = None, study_name: str = RUNS_STUDY) -> Any:
    """The study single runs are stored in, created if needed. `leanfit run` calls it before training, so a
    storage problem shows up before the run, not after it."""
    import optuna

    storage = open_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)


def save_run(result: RunResult, storage: Any = None, study_name: str = RUNS_STUDY) -> int:
    """Record a single run as a finished trial (COMPLETE with value=accuracy, or FAIL / PRUNED). Returns its number."""
    import optuna

    study = runs_study(storage, study_name)
    trial = study.ask()
    write_result(trial, result)
    if result.status == "complete":
        study.tell(trial, result.accuracy)
    elif result.status == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return trial.number


def load_runs(storage: Any = None, study_name: str | None = None, states: Iterable[str] | None = None) -> list[RunResult]:
    """All stored RunResults of finished trials (of one study, or of every study in the storage). The status comes
    from the trial's state: a trial killed between writing its result and recording its state is FAIL in Optuna,
    so it is reported as failed ("interrupted"), never as complete."""
    import optuna

    storage = open_storage(storage)
    names = [study_name] if study_name else [s.study_name for s in optuna.get_all_study_summaries(storage)]
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    out = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        for t in study.get_trials(deepcopy=False, states=finished):
            if "result" in t.user_attrs:
                r = trusted_result(t)
                if states is None or r.status in set(states):
                    out.append(r)
    return out


def trusted_result(trial: Any) -> RunResult:
    """A finished trial's RunResult with its status taken from the trial's state."""
    r = RunResult.from_dict(trial.user_attrs["result"])
    state = trial.state.name
    if state == "COMPLETE":
        r.status = "complete"
    elif state == "PRUNED":
        r.status = "pruned"
    elif r.status != "failed":
        r.status = "failed"
        r.error = r.error or trial.user_attrs.get("fail_reason") or "interrupted before its state was recorded"
    return r
