"""``leanfit estimate RECIPE``: what a run will cost before running it — trainable/total parameters,
optimizer-state bytes, model-level train memory (parameters, gradients, optimizer state, saved activations), FLOPs
per step and for the whole schedule, and a wall-time forecast — from a few real, metered steps of the recipe's own
model, optimizer and batches (the same meters as the run, so memory and FLOPs equal the run's exactly when batch
shapes are fixed). It says whether the train memory fits a limit (``--memory`` GiB, else this machine's RAM).

Not included: data selectors' scoring passes (run them to measure), evaluation time (excluded from a run's wall
time too). With dynamic padding the FLOPs of other batches are scaled from the timed ones by their token counts.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .callbacks import Callback, TrainState
from .meters import count_params, optimizer_state_bytes, param_bytes
from .recipe import Recipe
from .run import build_run
from .trainer import Trainer

GIB = 2 ** 30


@dataclass
class Estimate:
    label: str
    task: str
    trainable_params: int
    total_params: int
    optimizer_state_bytes: int
    param_bytes: int
    grad_bytes: int
    activation_bytes: int
    train_memory_bytes: int
    flops_per_step: float
    planned_steps: int
    train_flops: float
    step_time_s: float
    wall_time_s: float
    memory_limit_bytes: int
    fits: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _StepTimer(Callback):
    """Step times on the Trainer's own clock (the run's ``wall_time_s``): the FLOP/activation metering of a new
    batch shape runs with that clock paused, so it is left out here too (timing around the whole step counted
    it, doubling SmolLM2's dynamically padded steps)."""

    def __init__(self) -> None:
        self.marks: list[float] = []  # the clock at the end of each step (0 before the first)
        self._t0 = 0.0
        self.setup_s = 0.0  # fit start → first step: a head-only run's frozen-feature cache is built here

    def on_fit_start(self, state: TrainState) -> None:
        self._t0 = time.perf_counter()

    def before_step(self, state: TrainState) -> None:
        if not self.marks:
            self.setup_s = time.perf_counter() - self._t0
        self.marks.append(state.wall_time)

    def finish(self, state: TrainState) -> None:
        self.marks.append(state.wall_time)

    @property
    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def machine_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def estimate(recipe: Recipe, timed_steps: int = 3, memory_gib: float | None = None, task: Any = None) -> Estimate:
    """Meter and time ``timed_steps`` steps of the recipe on a throw-away copy, then extrapolate to its schedule."""
    run = build_run(recipe, task)
    trainable, total = count_params(run.model)
    sch = recipe.schedule
    timer = _StepTimer()
    probe = Trainer(run.task, run.model, run.optimizer, _probe_schedule(sch, timed_steps), [timer], recipe.seed,
                    evaluate=False, measure_memory=False)
    probe.prefill_cache = True  # a full run caches every train row (on first use): timed apart from the steps
    s = probe.fit()
    timer.finish(s)
    rows_per_step = sch.batch_size * sch.grad_accum
    n = run.task.n_train
    planned = sch.max_steps or sch.epochs * math.ceil(n / rows_per_step)
    per_step, total_flops, notes = _schedule_flops(probe, s, n, sch, planned)
    state = optimizer_state_bytes(run.optimizer)
    grads = param_bytes(run.model, trainable_only=True) * (not probe.forward_passes)
    memory = param_bytes(run.model) + grads + state + probe.activation_bytes
    step_time = statistics.median(timer.times[1:] or timer.times)  # the first step warms caches up
    setup = timer.setup_s if s.cache_flops else 0.0  # the feature cache covers the whole train split: built once
    limit = int(memory_gib * GIB) if memory_gib else machine_memory()
    if run.callbacks and recipe.data:
        notes.append(f"data selector {recipe.data.name!r}: its scoring passes are not in this estimate"
                     + (" and the frozen-feature cache is counted for every train row (a run caches only the rows "
                        "it trains on)" if s.cache_flops else ""))
    return Estimate(recipe.label, run.task.name, trainable, total, state, param_bytes(run.model), grads,
                    probe.activation_bytes, memory, per_step, planned, total_flops,
                    step_time, setup + step_time * planned, limit, memory <= limit, notes)


def _probe_schedule(sch, steps: int):
    from dataclasses import replace

    return replace(sch, epochs=1, max_steps=steps, eval_every=None, early_stopping_patience=None, keep_best=False,
                   lr_schedule="constant", warmup_ratio=0.0)


def _schedule_flops(probe: Trainer, s: TrainState, n: int, sch, planned: int) -> tuple[float, float, list[str]]:
    """(FLOPs of a full step, FLOPs of the whole schedule). Exact for fixed shapes: every epoch is its full steps
    and one last, smaller step, each metered; scaled from the timed steps when batches are dynamically padded or
    the optimizer evaluates the loss a varying number of times (closure optimizers)."""
    notes: list[str] = []
    measured = (s.flops - s.cache_flops) / max(s.step, 1)
    if probe.task.collate is not None or probe.closure_step:
        notes.append("FLOPs scaled from the timed steps (batch shapes or loss evaluations vary: exact only for "
                     "fixed shapes)")
        return measured, measured * planned + s.cache_flops, notes
    rows = sch.batch_size * sch.grad_accum
    full, last = divmod(n, rows)
    step_opt = probe.meter.step_flops()

    def step_flops(size: int) -> float:  # a step of ``size`` rows: its micro-batches, metered, + the update
        micro = torch.arange(size).split(sch.batch_size)
        return sum(probe.meter.flops(probe.task.batch("train", m)) for m in micro) + step_opt

    per_full = step_flops(rows) if full else step_flops(last)
    per_epoch = full + (1 if last else 0)
    epochs, rest = divmod(planned, per_epoch)
    partial = epochs if last and full else 0  # each completed epoch ends with one smaller step
    total = (planned - partial) * per_full + (partial * step_flops(last) if partial else 0.0)
    return per_full, total + s.cache_flops, notes
