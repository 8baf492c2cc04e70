"""Several processes taking WAITING trials from one SQLite study never take the same trial twice.

SQLite ignores SELECT … FOR UPDATE; without BEGIN IMMEDIATE (store._serialize_sqlite) 4 processes popping 300
queued trials took 323–329 of them — the same trial ran twice."""
import multiprocessing as mp

import optuna

from leanfit.engine.store import open_storage


def _pop_all(url: str, q) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    got = []
    while True:
        study._thread_local.cached_all_trials = None
        tid = study._pop_waiting_trial_id()  # what drain() uses
        if tid is None:
            break
        got.append(tid)
    q.put(got)


def test_waiting_to_running_handover_is_atomic_across_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'handover.db'}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for i in range(200):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_pop_all, args=(url, q)) for _ in range(4)]
    for p in procs:
        p.start()
    taken = [t for _ in procs for t in q.get(timeout=300)]
    for p in procs:
        p.join()
    assert len(taken) == 200 and len(set(taken)) == 200
