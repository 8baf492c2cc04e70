"""Executors: K local worker processes, or K Ray tasks (extra ``leanfit[ray]``), each draining the study's queue
from the shared storage (worker.py). On one machine ``ray.init()`` starts a local cluster; on many, start
``ray start --head`` on one node and ``ray start --address=<head>:6379`` on the others, use a PostgreSQL storage URL
every node can reach, and set ``RAY_ADDRESS=auto`` (or the head's address) before ``leanfit search --executor ray``.
"""
from __future__ import annotations

import os
from typing import Any

from ..engine.errors import LeanfitError
from .worker import drain


def _drain_entry(storage: str, study_name: str, cfg: dict[str, Any], worker: int) -> int:
    import torch

    torch.set_num_threads(1)  # K workers share the cores
    return drain(storage, study_name, cfg, worker)


def run_processes(storage: str, study_name: str, cfg: dict[str, Any], workers: int) -> None:
    """K spawned local processes; a worker that died is reported (its trial is retried on the next run)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_drain_entry, args=(storage, study_name, cfg, i)) for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise LeanfitError(f"{len(bad)} of {workers} worker processes exited with codes {bad}; rerun the same "
                           "command to resume (their trials will be retried).")


def run_ray(storage: str, study_name: str, cfg: dict[str, Any], workers: int, num_cpus: int | None = None) -> int:
    """Run ``workers`` Ray tasks (1 CPU each) against the storage; returns the number of trials they ran."""
    from ..engine.errors import require

    ray = require("ray", extra="ray")
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=None if address else (num_cpus or workers), include_dashboard=False,
                 log_to_driver=True, ignore_reinit_error=True)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_drain_entry)
        return sum(ray.get([task.remote(storage, study_name, cfg, i) for i in range(workers)]))
    finally:
        if started:
            ray.shutdown()
