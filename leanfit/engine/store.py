"""Store: every run — single or in a study — is an Optuna trial, so ``optuna-dashboard <url>`` shows our data.

- ``sqlite:///leanfit.db`` (default), any SQLAlchemy URL (``postgresql://user:pw@host/db``) → RDBStorage;
- ``journal:PATH`` or a path ending in ``.log``/``.journal`` → JournalStorage with a file backend (several processes
  on one host without a database server).

The RunResult is stored whole as the trial user attr ``result`` (JSON); headline numbers are also flattened into
user attrs so the dashboard can chart them.
"""
from __future__ import annotations

from typing import Any, Iterable

from .result import COST_KEYS, RunResult

DEFAULT_STORAGE = "sqlite:///leanfit.db"
RUNS_STUDY = "leanfit-runs"


def storage_url(url: str | None) -> str:
    """The one place storage URLs are normalised: default, ``postgres://`` → ``postgresql://``, and
    ``postgresql://`` → ``postgresql+psycopg2://`` when only psycopg2 is installed (SQLAlchemy ≥ 2.1 defaults to
    the psycopg 3 driver)."""
    url = url or DEFAULT_STORAGE
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def open_storage(url: Any = None) -> Any:
    """An Optuna storage for a URL (an already open storage is returned as it is)."""
    if url is not None and not isinstance(url, str):
        return url
    import optuna

    url = storage_url(url)
    if url.startswith("journal:") or url.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if url.startswith("postgresql"):
        from .errors import require

        require("psycopg2", extra="postgres")
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)
    if url.startswith("sqlite"):
        _serialize_sqlite(storage.engine)
    return storage


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
    import json

    from .result import _json_default

    for k, v in result_attrs(result).items():
        trial.set_user_attr(k, json.loads(json.dumps(v, default=_json_default)))


def save_run(result: RunResult, storage: Any = None, study_name: str = RUNS_STUDY) -> int:
    """Record a single run as a finished trial (COMPLETE with value=accuracy, or FAIL / PRUNED). Returns its number."""
    import optuna

    storage = open_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)
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
    """All stored RunResults (of one study, or of every study in the storage)."""
    import optuna

    storage = open_storage(storage)
    names = [study_name] if study_name else [s.study_name for s in optuna.get_all_study_summaries(storage)]
    out = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            if "result" in t.user_attrs and (states is None or t.user_attrs.get("status") in set(states)):
                out.append(RunResult.from_dict(t.user_attrs["result"]))
    return out
