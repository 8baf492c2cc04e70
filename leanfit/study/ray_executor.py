"""Ray executor (extra ``leanfit[ray]``): K Ray tasks, each a worker draining the study's queue from the shared
storage (see runner.py). On one machine ``ray.init()`` starts a local cluster; on many, start ``ray start --head``
on one node and ``ray start --address=<head>:6379`` on the others, use a PostgreSQL storage URL every node can
reach, and set ``RAY_ADDRESS=auto`` (or the head's address) before ``leanfit search --executor ray``.
"""
from __future__ import annotations

import os
from typing import Any


def _drain_task(storage: str, study_name: str, cfg: dict[str, Any], worker: int) -> int:
    import torch

    from .runner import drain

    torch.set_num_threads(1)
    return drain(storage, study_name, cfg, worker)


def run_ray(storage: str, study_name: str, cfg: dict[str, Any], workers: int, num_cpus: int | None = None) -> int:
    """Run ``workers`` Ray tasks (1 CPU each) against the storage; returns the number of trials they ran."""
    from ..errors import require

    ray = require("ray", extra="ray")
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=None if address else (num_cpus or workers), include_dashboard=False,
                 log_to_driver=True, ignore_reinit_error=True)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_drain_task)
        return sum(ray.get([task.remote(storage, study_name, cfg, i) for i in range(workers)]))
    finally:
        if started:
            ray.shutdown()
