"""The Trainer: a plain PyTorch loop that reads top to bottom, with eight named hooks (see callbacks.py) and exact
cost meters (metering.py). It holds the one optimizer-step protocol (``_train_step``): plain ``step()``, the
standard closure (SANIA, L-BFGS), the loss (AliG), or k forward passes (zeroth-order, MeZO). lr-find, data
selectors' proxy models (``state.fit_proxy``) and the optimizer contract tests all train through it.

Memory levers (schedule options): gradient accumulation (``grad_accum`` micro-batches per optimizer step),
activation checkpointing (``gradient_checkpointing``, Hugging Face models) and bf16 autocast (``precision``).
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Sequence

import torch
from torch import nn

from .best import BestTracker
from .callbacks import Callback, TrainState
from .errors import ConfigError, NonFiniteLossError
from .features import FeatureCache, head_module, set_frozen_mode, try_cache
from .metering import StepMeter
from .meters import PeakRSS, Stopwatch
from .metrics import Evaluation
from .recipe import Schedule
from .schedules import length_grouped, lr_scheduler
from .task import Task, TensorDict

HOOKS = ("on_fit_start", "on_epoch_start", "before_step", "after_backward", "after_step", "on_eval",
         "on_epoch_end", "on_fit_end")


class Trainer:
    """Train ``model`` on ``task`` with ``optimizer`` for ``schedule``.

    ``generator``: the data-order RNG to use (a nested proxy run shares its caller's; the global RNG is then not
    reseeded). ``rows``: the train rows an epoch visits by default (all). ``evaluate=False`` skips every eval;
    ``measure_memory=False`` leaves the process high-water mark alone (a nested run must not reset its caller's)."""

    def __init__(self, task: Task, model: nn.Module, optimizer: Any, schedule: Schedule = Schedule(),
                 callbacks: Sequence[Callback] = (), seed: int = 0, device: str | None = None,
                 generator: torch.Generator | None = None, rows: torch.Tensor | None = None, evaluate: bool = True,
                 measure_memory: bool = True):
        self.task, self.schedule, self.callbacks = task, schedule, list(callbacks)
        # CPU unless told otherwise (LEANFIT_DEVICE=cuda): the device is where a run happens, not part of a recipe
        self.device = torch.device(device or os.environ.get("LEANFIT_DEVICE", "cpu"))
        self.nested = generator is not None
        self.state = TrainState(task=task, model=model, optimizer=optimizer, seed=seed, epochs=schedule.epochs,
                                batch_size=schedule.batch_size,
                                generator=generator if generator is not None else torch.Generator().manual_seed(seed),
                                fit_proxy=self._fit_proxy)
        self.rows, self.evaluate_enabled, self.measure_memory = rows, evaluate, measure_memory
        self.forward_passes = getattr(optimizer, "forward_passes_per_step", 0)  # >0: zeroth-order (no backward)
        self.closure_step = bool(getattr(optimizer, "needs_closure", False))  # step(closure): forward+backward inside
        self.loss_step = bool(getattr(optimizer, "needs_loss", False))  # step(lambda: loss) after the usual backward
        if schedule.grad_accum > 1 and (self.forward_passes or self.closure_step):
            raise ConfigError(f"schedule.grad_accum must be 1 for {type(optimizer).__name__}, but got "
                              f"{schedule.grad_accum}: it evaluates the loss itself. Fix: raise batch_size instead.")
        self.meter = StepMeter(model, optimizer, self._loss, self.forward_passes, self.closure_step, self.loss_step)
        self._forward = task.forward  # the training forward (the head on cached features when head-only)
        self._cache: FeatureCache | None = None
        self.prefill_cache = False  # head-only: cache every train row before step 1 (estimate), not on first use
        self._frozen_head: nn.Module | None = None  # head-only runs: the head (the rest is a frozen prefix)
        self._mode_dirty = True  # re-apply train/eval modes before the next step (evals reset them)
        self._fit_done = False  # after fit, schedule-free optimizers leave the evaluated weights in the model
        self.best = BestTracker(schedule.monitor, schedule.min_delta, schedule.early_stopping_patience,
                                schedule.keep_best) if (schedule.keep_best or schedule.early_stopping_patience) else None

    @property
    def activation_bytes(self) -> int:
        return self.meter.activation_bytes

    # ---- the loop -----------------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        s, sch = self.state, self.schedule
        if not self.nested:
            torch.manual_seed(s.seed)  # dropout and any other global-RNG use
        n_rows = self.task.n_train if self.rows is None else len(self.rows)
        s.planned_steps = sch.max_steps or sch.epochs * math.ceil(n_rows / (sch.batch_size * sch.grad_accum))
        clock = Stopwatch()
        s.model.to(self.device)  # in place: the optimizer keeps the same Parameter objects
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with PeakRSS(enabled=self.measure_memory) as rss:
            self._emit("on_fit_start")
            self._setup_levers()  # train time: a cached prefix is part of what the run computes
            s.scheduler = lr_scheduler(s.optimizer, sch, s.planned_steps)
            for s.epoch in range(sch.epochs):
                s.epoch_indices = self._epoch_order()  # selectors may replace it
                self._emit("on_epoch_start")
                if sch.group_by_length:
                    s.epoch_indices = length_grouped(s.epoch_indices, self.task.lengths("train"),
                                                     sch.batch_size * sch.grad_accum, s.generator)
                for idx in s.epoch_indices.split(sch.batch_size * sch.grad_accum):
                    self._step(idx, clock)
                    if self._budget_spent() or s.should_stop:
                        break
                self._emit("on_epoch_end")
                if s.should_stop:
                    break
                if not sch.eval_every and s.epoch < sch.epochs - 1:
                    with clock.paused():
                        self._eval_and_log(sch.eval_fraction)
            self._optimizer_weights("eval")  # schedule-free: the model keeps the averaged (evaluated) weights
            self._fit_done = True
            with clock.paused():
                self._restore_best()
            self._emit("on_fit_end")  # post-training compression acts here, before the final eval
            s.wall_time = clock.elapsed
            if not s.pruned:
                self._eval_and_log(1.0)
        s.peak_rss_bytes = rss.peak
        if self.device.type == "cuda":
            s.peak_cuda_bytes = torch.cuda.max_memory_allocated(self.device)
        return s

    def _step(self, idx: torch.Tensor, clock: Stopwatch) -> None:
        """One optimizer step over the rows ``idx`` ({inputs..., labels, index} batches; ``grad_accum``
        micro-batches of ``batch_size`` rows), with its hooks, costs and scheduled eval."""
        s, sch = self.state, self.schedule
        if self._cache is not None:  # rows seen for the first time: their frozen features, charged to the run
            self._cache.ensure("train", idx)
            new = self._cache.split_flops.get("train", 0.0) - s.cache_flops
            s.flops, s.cache_flops = s.flops + new, s.cache_flops + new
        micro = [self._to_device(self.task.batch("train", m)) for m in idx.split(sch.batch_size)]
        s.batch = micro[0]
        self._emit("before_step")
        with clock.paused():
            flops = sum(self.meter.flops(b) for b in micro)
        evaluations = self._train_step(s, micro)
        s.step += 1
        s.samples_seen += len(idx)
        for b in micro:
            real, padded = self.task.token_counts(b)
            s.tokens_seen, s.padded_tokens_seen = s.tokens_seen + real, s.padded_tokens_seen + padded
        step_opt = self.meter.step_flops()
        s.flops += flops * evaluations + step_opt
        s.optimizer_flops += step_opt
        self._emit("after_step")
        s.wall_time = clock.elapsed
        if sch.eval_every and s.step % sch.eval_every == 0:
            with clock.paused():
                self._eval_and_log(sch.eval_fraction)

    def _epoch_order(self) -> torch.Tensor:
        g = self.state.generator
        if self.rows is None:
            return torch.randperm(self.task.n_train, generator=g)
        return self.rows[torch.randperm(len(self.rows), generator=g)]

    def _setup_levers(self) -> None:
        """Gradient checkpointing; for head-only runs, the frozen prefix cached (``frozen_prefix: cache``) or kept in
        eval mode (``eval``) or train mode (``train``) while it is recomputed every step (features.py)."""
        s, mode = self.state, self.schedule.frozen_prefix
        if self.schedule.gradient_checkpointing:
            enable_checkpointing(s.model)
        head = head_module(s.model, self.task)
        if head is None or mode == "train":
            return
        self._frozen_head = head
        if mode == "cache":
            self._cache = try_cache(s.model, self.task, self._to_device, prefill=self.prefill_cache)
            if self._cache is None:
                self._frozen_head = None
                return
            s.cache_flops = self._cache.split_flops.get("train", 0.0)
            s.flops += s.cache_flops
            self._forward = self._cache.forward("train")

    def _train_step(self, s: TrainState, micro: list[TensorDict]) -> int:
        """One optimizer step; returns how many metered evaluations (forward+backward, or the zeroth-order
        optimizer's k forwards) it ran."""
        if self._mode_dirty or not s.model.training:  # .train() walks every module: only when something changed
            if self._frozen_head is not None:
                set_frozen_mode(s.model, self._frozen_head, self.schedule.frozen_prefix)
            else:
                s.model.train()
            self._mode_dirty = False
        calls = 1
        if self.forward_passes:  # zeroth-order optimizer: it perturbs weights and calls the closure itself
            # eval mode: the two perturbed losses must differ only by the perturbation, not by dropout masks
            # (MeZO's code turns dropout off; with it on, the projected gradient is mostly dropout noise)
            s.model.eval()
            try:
                with torch.no_grad():
                    loss = s.optimizer.step(lambda: self._loss(micro[0])[0])
            finally:
                s.model.train()
            s.loss = torch.as_tensor(loss).detach()
            self._check_finite(s.loss)
        elif self.closure_step:
            calls = 0

            def closure() -> torch.Tensor:  # the standard PyTorch closure; the first call's outputs are the step's
                nonlocal calls
                s.optimizer.zero_grad(set_to_none=True)
                loss = self._backward(s, micro[0], first=calls == 0)
                self._clip()
                calls += 1
                return loss

            s.optimizer.step(closure)
        else:
            n = sum(len(b["index"]) for b in micro)
            for j, b in enumerate(micro):  # the effective batch's mean loss: each micro-batch weighted by its rows
                loss = self._backward(s, b, first=j == 0, weight=len(b["index"]) / n)
            self._clip()
            if self.loss_step:
                s.optimizer.step(lambda: loss.detach())
            else:
                s.optimizer.step()
        if s.scheduler is not None and s.step + 1 < s.planned_steps:
            s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        return calls

    def _backward(self, s: TrainState, batch: TensorDict, first: bool, weight: float = 1.0) -> torch.Tensor:
        """Forward, loss check, backward, ``after_backward``; the first evaluation of a step sets the state's loss,
        per-sample loss and logits."""
        s.batch = batch
        loss, per_sample, logits = self._loss(batch)
        self._check_finite(loss)
        (loss * weight if weight != 1.0 else loss).backward()
        if first:
            s.loss, s.per_sample_loss, s.logits = loss.detach(), per_sample.detach(), logits.detach()
        self._emit("after_backward")
        return loss

    def _clip(self) -> None:
        if self.schedule.grad_clip:
            params = [p for p in self.state.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, self.schedule.grad_clip)

    def _loss(self, batch: TensorDict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self._autocast():
            logits = self._forward(self.state.model, batch)  # [B, C] (language models: [B, T, V])
            per_sample = self.task.per_sample_loss(logits, batch).float()  # [B]
        w = self.state.sample_weights
        loss = (per_sample * w.to(per_sample.device)[batch["index"]]).mean() if w is not None else per_sample.mean()
        return loss, per_sample, logits

    def _autocast(self) -> Any:
        if self.schedule.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not math.isfinite(loss.item()):
            s = self.state
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {s.step} (epoch {s.epoch}). The run is stored as "
                "failed. Fix: lower the learning rate, add schedule.grad_clip, or use warmup.")

    # ---- proxies: selectors' scoring models train through a nested Trainer ---------------------------------
    def _fit_proxy(self, model: nn.Module, optimizer: Any, rows: torch.Tensor, epochs: int, batch_size: int,
                   generator: torch.Generator, callbacks: Sequence[Callback] = ()) -> TrainState:
        """Train ``model`` on train ``rows`` (a fresh order each epoch, drawn from ``generator``) without evals or
        memory metering; the returned state holds its FLOPs and wall time."""
        proxy = Trainer(self.task, model, optimizer, Schedule(epochs=epochs, batch_size=batch_size), callbacks,
                        self.state.seed, str(self.device), generator=generator, rows=rows, evaluate=False,
                        measure_memory=False)
        return proxy.fit()

    # ---- evaluation (excluded from train time) ------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, fraction: float = 1.0, batch_size: int | None = None, split: str = "validation",
                 swap: bool = True) -> Evaluation:
        """Metrics on ``split`` (a fixed seeded ``fraction`` of its rows for intermediate evals). The Trainer only
        ever evaluates validation; ``run_recipe`` scores test once, after training. ``swap``: put schedule-free
        optimizers' evaluation weights in place (and back) around it."""
        n_all = self.task.n_rows(split)
        rows = torch.arange(n_all) if fraction >= 1 else \
            torch.randperm(n_all, generator=torch.Generator().manual_seed(0))[:max(1, math.ceil(n_all * fraction))]
        if swap:
            self._optimizer_weights("eval")
        ev = self.task.evaluate(self.state.model, split, rows, batch_size, self._to_device, self._eval_forward(split))
        if swap and not self._fit_done:
            self._optimizer_weights("train")
        self._mode_dirty = True
        return ev

    def _eval_forward(self, split: str):
        """With a feature cache, evals run the head on the split's cached features too (computed once)."""
        if self._cache is None:
            return None
        if split not in self._cache.features:
            self._cache.build(split)
        return self._cache.forward(split)

    def _optimizer_weights(self, mode: str) -> None:
        """Schedule-free optimizers (2405.15682) train on one iterate and evaluate another; their ``eval()`` /
        ``train()`` swap the weights in place. Evaluating without the swap would understate them."""
        opt = getattr(self.state, "optimizer", None)
        if opt is not None and callable(getattr(opt, "eval", None)) and callable(getattr(opt, "train", None)):
            getattr(opt, mode)()

    def _eval_and_log(self, fraction: float) -> None:
        if not self.evaluate_enabled:
            return
        s = self.state
        self._optimizer_weights("eval")  # the evaluated weights are the ones a best checkpoint keeps
        s.evaluation = self.evaluate(fraction, swap=False)
        s.metrics = dict(s.evaluation.metrics)
        s.curve.append({"step": s.step, "epoch": s.epoch, "samples": s.samples_seen, "flops": s.flops,
                        "wall_time_s": s.wall_time, **s.metrics})
        if self.best is not None and not self._fit_done:
            if self.best.observe(s.metrics, s.step, s.epoch, s.model):
                s.stop(f"early stopping: validation {self.best.monitor} did not improve for "
                       f"{self.best.patience} evaluations (best {self.best.best['value']:.4f} at step "
                       f"{self.best.best['step']})")
        if not self._fit_done:
            self._optimizer_weights("train")
        self._emit("on_eval")

    def _restore_best(self) -> None:
        """keep_best: evaluate the final weights too, then go back to the best evaluation's if it was better."""
        s = self.state
        if self.best is None or not self.best.keep or not self.evaluate_enabled or s.pruned:
            return
        if not s.curve or s.curve[-1]["step"] != s.step:
            self._fit_done = False
            self._eval_and_log(self.schedule.eval_fraction)  # the end of training is a candidate too
            self._fit_done = True
            self._optimizer_weights("eval")
        s.best_checkpoint = dict(self.best.best, restored=self.best.restore(s.model, s.step), final_step=s.step)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _budget_spent(self) -> bool:
        s, sch = self.state, self.schedule
        for limit, used, what in ((sch.max_steps, s.step, "max_steps"), (sch.max_samples, s.samples_seen, "max_samples"),
                                  (sch.max_flops, s.flops, "max_flops"),
                                  (sch.max_minutes and sch.max_minutes * 60, s.wall_time, "max_minutes")):
            if limit is not None and used >= limit:
                s.stop(f"budget {what} reached")
                return True
        return False

    def _to_device(self, batch: TensorDict) -> TensorDict:
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)


def enable_checkpointing(model: nn.Module) -> None:
    """Activation (gradient) checkpointing on every Hugging Face model inside ``model``: blocks keep only their
    inputs and recompute the rest during backward (non-reentrant, so frozen inputs need no grad hack)."""
    found = [m for m in model.modules() if callable(getattr(m, "gradient_checkpointing_enable", None))
             and getattr(m, "supports_gradient_checkpointing", False)]
    if not found:
        raise ConfigError("schedule.gradient_checkpointing needs a Hugging Face model that supports it, but this "
                          f"task's model ({type(model).__name__}) has none. Fix: set gradient_checkpointing: false.")
    for m in found:  # transformers ≥ 5 renamed it activation_checkpointing_enable
        if callable(getattr(m, "activation_checkpointing_enable", None)):
            m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
