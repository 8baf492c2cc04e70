"""The study's queue, and resuming it: sweep RUNNING trials whose worker is gone to FAIL, then top the queue up
with retries of interrupted trials and fresh trials until done + running + waiting == N (see runner.py)."""
from __future__ import annotations

import os
import socket
import time
from typing import Any

from .config import GRID_PARAM


def _alive(pid: int) -> bool:
    import psutil

    if pid == os.getpid():  # a restarted container can reuse our pid; we run no trial yet
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stale_reason(t: Any, stale_after_s: float, host: str | None = None, now: float | None = None) -> str | None:
    """Why a RUNNING trial's worker is gone (same host: its pid is dead; any host: no heartbeat for
    ``stale_after_s``), or None while it is alive."""
    host, now = host or socket.gethostname(), now or time.time()
    w = t.user_attrs.get("worker") or {}
    beat = t.user_attrs.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else now)
    if w.get("host") == host and not _alive(int(w.get("pid", -1))):
        return f"interrupted: worker pid {w.get('pid')} on {host} is gone"
    if now - beat > stale_after_s:
        return f"interrupted: no heartbeat for {now - beat:.0f} s (> {stale_after_s:.0f} s)"
    return None


def sweep_stale(study: Any, stale_after_s: float = 600.0) -> list[int]:
    """Mark RUNNING trials whose worker is gone FAIL (``stale_reason``). Returns their numbers."""
    from optuna.trial import TrialState

    host, now, out = socket.gethostname(), time.time(), []
    st = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        why = stale_reason(t, stale_after_s, host, now)
        if why is None:
            continue
        st.set_trial_user_attr(t._trial_id, "fail_reason", why)
        st.set_trial_state_values(t._trial_id, TrialState.FAIL)
        out.append(t.number)
    return out


def is_done(t: Any) -> bool:
    """COMPLETE, PRUNED, or FAIL on purpose (an error, or a failed run's result, e.g. a NaN loss). A FAIL trial
    whose result says complete/pruned was killed between writing its result and telling its state: interrupted,
    so it is retried (and ``load_runs`` reports it failed, never complete)."""
    from optuna.trial import TrialState

    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if t.state != TrialState.FAIL:
        return False
    result = t.user_attrs.get("result")
    return "error" in t.user_attrs or (isinstance(result, dict) and result.get("status") == "failed")


def top_up(study: Any, n_trials: int, grid_size: int | None = None) -> tuple[list[int], int]:
    """Enqueue retries of interrupted trials, then fresh trials, until done + running + waiting == n_trials.
    With a grid (``grid_size`` points), fresh trials get the next unused ``grid_id`` (in order; repeats only
    once every point was used). Returns (numbers retried, fresh trials enqueued)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    done = sum(is_done(t) for t in trials)
    pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    interrupted = [t for t in trials if t.state == TrialState.FAIL and not is_done(t) and t.number not in retried]
    need = n_trials - done - pending
    again = []
    for t in interrupted[:max(need, 0)]:
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        again.append(t.number)
    fresh = max(need - len(again), 0)
    used = [(t.system_attrs.get("fixed_params") or t.params).get(GRID_PARAM) for t in trials]
    for i in range(fresh):
        if grid_size:
            free = [g for g in range(grid_size) if g not in used] or list(range(grid_size))
            used.append(free[0])
            study.enqueue_trial({GRID_PARAM: free[0]})
        else:
            study.enqueue_trial({})
    return again, fresh
