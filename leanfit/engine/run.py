"""From a recipe to a measured run: ``build_run`` instantiates every choice once (task → model → adapter →
optimizer → method callbacks) and ``run_recipe`` trains it and fills a RunResult with every cost."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from . import registry
from .callbacks import Callback, TrainState
from .errors import LeanfitError, NonFiniteLossError
from .meters import count_params, optimizer_state_bytes, param_bytes, trainable_named_parameters
from .recipe import Recipe
from .result import RunResult, environment
from .task import Task, build_task
from .trainer import Trainer


@dataclass
class BuiltRun:
    """Everything a recipe instantiates, built once: the task, the model with its adapter applied, the adapter
    object (for merging), the optimizer and the method callbacks (data selector, compressors)."""

    recipe: Recipe
    task: Task
    model: nn.Module
    adapter: Any
    optimizer: Any
    callbacks: list[Callback] = field(default_factory=list)
    frozen_unused: list[str] = field(default_factory=list)  # trainable parameters that get no gradient: frozen

    def trainer(self, callbacks: Iterable[Callback] = (), **kwargs: Any) -> Trainer:
        r = self.recipe
        return Trainer(self.task, self.model, self.optimizer, r.schedule, [*self.callbacks, *callbacks], r.seed,
                       **kwargs)


def build_run(recipe: Recipe, task: Task | None = None) -> BuiltRun:
    """Instantiate a recipe from its validated configs (``recipe.configs``)."""
    cfg = recipe.configs
    task = task or build_task(recipe.task.name, **recipe.task.kwargs)
    torch.manual_seed(recipe.seed)
    model = task.build_model(recipe.seed)
    adapter = registry.get("adapters", recipe.adapter.name).build(cfg.adapter)
    model = adapter.apply(model, task)
    unused = freeze_unused(model, task)
    params = trainable_named_parameters(model)
    if not params:
        raise LeanfitError(f"adapter {recipe.adapter.name!r} left no trainable parameters on task {task.name}.")
    optimizer = registry.get("optim", recipe.optimizer.name).build(cfg.optimizer).build(params, task)
    callbacks: list[Callback] = []
    if recipe.data:
        callbacks.append(registry.get("data", recipe.data.name).build(cfg.data))
    callbacks += [registry.get("compress", c.name).build(k) for c, k in zip(recipe.compress, cfg.compress)]
    return BuiltRun(recipe, task, model, adapter, optimizer, callbacks, unused)


def freeze_unused(model: nn.Module, task: Task) -> list[str]:
    """Freeze trainable parameters that receive no gradient (e.g. an encoder's pooler the task never uses), so they
    are neither counted as trainable nor updated or perturbed (MeZO). Probed with one backward on two train rows in
    eval mode; the RNG, gradients and buffers are left as they were."""
    rows = torch.arange(min(2, task.n_train))
    batch = task.batch("train", rows)
    rng, was = torch.get_rng_state(), model.training
    model.eval()
    try:
        task.per_sample_loss(task.forward(model, batch), batch).sum().backward()
    finally:
        model.train(was)
        torch.set_rng_state(rng)
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for n, p in model.named_parameters():
        p.grad = None
        if n in unused:
            p.requires_grad_(False)
    return unused


def run_recipe(recipe: Recipe, task: Task | None = None, callbacks: Iterable[Callback] = ()) -> RunResult:
    """Train one recipe and measure it. A NaN loss gives a RunResult with status 'failed' (never lost)."""
    return train_recipe(recipe, task, callbacks)[0]


def train_recipe(recipe: Recipe, task: Task | None = None,
                 callbacks: Iterable[Callback] = ()) -> tuple[RunResult, BuiltRun]:
    """``run_recipe`` that also hands back what it built and trained (the model, for saving)."""
    run = build_run(recipe, task)
    trainable, total = count_params(run.model)
    trainer = run.trainer(callbacks)
    result = RunResult(recipe=recipe.to_dict(), recipe_id=recipe.id, task=run.task.name, env=environment(),
                       data_hash=run.task.data_hash())
    try:
        s = trainer.fit()
        result.status = "pruned" if s.pruned else "complete"
    except NonFiniteLossError as e:
        s, result.status, result.error = trainer.state, "failed", str(e)
    result.metrics = dict(s.metrics)
    result.curve = list(s.curve)
    if s.evaluation is not None:
        result.diagnostics["validation"], result.flags = s.evaluation.details, list(s.evaluation.flags)
    if result.status == "complete":  # test: scored once, on the finished model, never seen by anything that chooses
        test = run.task.evaluate(run.model, "test", to_device=trainer._to_device)
        result.test_metrics, result.diagnostics["test"] = dict(test.metrics), test.details
        result.flags += [f"test:{f}" for f in test.flags]
    result.costs = run_costs(run, trainer, s, trainable, total)
    result.extra = run_reports(s)
    if run.frozen_unused:
        result.extra["frozen_unused"] = run.frozen_unused
    return result, run


def run_costs(run: BuiltRun, trainer: Trainer, s: TrainState, trainable: int, total: int) -> dict[str, float]:
    """The cost meters of a finished run (see README "What is measured")."""
    state_bytes = optimizer_state_bytes(run.optimizer)
    grads = param_bytes(run.model, trainable_only=True) * (not trainer.forward_passes)  # zeroth-order: no grads
    return {
        "trainable_params": trainable, "total_params": total, "optimizer_state_bytes": state_bytes,
        "activation_bytes": trainer.activation_bytes,
        "train_memory_bytes": param_bytes(run.model) + grads + state_bytes + trainer.activation_bytes,
        "peak_rss_bytes": s.peak_rss_bytes, "train_flops": s.flops, "optimizer_flops": s.optimizer_flops,
        "cache_flops": s.cache_flops,
        "samples_seen": s.samples_seen, "tokens_seen": s.tokens_seen, "padded_tokens_seen": s.padded_tokens_seen,
        "steps": s.step, "wall_time_s": s.wall_time,
    }


def run_reports(s: TrainState) -> dict[str, Any]:
    """What the methods reported, for RunResult.extra (data-selector keys flattened as ``data_<key>``)."""
    extra: dict[str, Any] = {"planned_steps": s.planned_steps}
    if s.compress_reports:
        extra["compress"] = list(s.compress_reports)
    extra.update({f"data_{k}": v for k, v in s.data_report.items()})
    if s.peak_cuda_bytes:
        extra["peak_cuda_bytes"] = s.peak_cuda_bytes
    if s.stop_reason:
        extra["stop_reason"] = s.stop_reason
    if s.best_checkpoint:
        extra["best_checkpoint"] = s.best_checkpoint
    return extra
