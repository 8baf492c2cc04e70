"""The Trainer: a plain PyTorch loop that reads top to bottom, with eight named hooks (see callbacks.py) and exact
cost meters. It holds the one optimizer-step protocol (``_train_step``): plain ``step()``, the standard closure
(SANIA, L-BFGS), the loss (AliG), or k forward passes (zeroth-order, MeZO). lr-find, data selectors' proxy
models (``state.fit_proxy``) and the optimizer contract tests all train through it.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import torch
from torch import nn

from .callbacks import Callback, TrainState
from .errors import NonFiniteLossError
from .meters import PeakRSS, Stopwatch, count_flops, saved_activation_bytes
from .metrics import Evaluation
from .recipe import Schedule
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
        self._flops_per_shape: dict[tuple, float] = {}
        self._optimizer_flops: dict[tuple, float] = {}  # per set of trainable-parameter shapes
        self.activation_bytes = 0
        self._fit_done = False  # after fit, schedule-free optimizers leave the evaluated weights in the model

    # ---- the loop -----------------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        s, sch = self.state, self.schedule
        if not self.nested:
            torch.manual_seed(s.seed)  # dropout and any other global-RNG use
        n_rows = self.task.n_train if self.rows is None else len(self.rows)
        s.planned_steps = sch.max_steps or sch.epochs * math.ceil(n_rows / sch.batch_size)
        clock = Stopwatch()
        s.model.to(self.device)  # in place: the optimizer keeps the same Parameter objects
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with PeakRSS(enabled=self.measure_memory) as rss:
            self._emit("on_fit_start")
            s.scheduler = self._lr_scheduler()
            for s.epoch in range(sch.epochs):
                s.epoch_indices = self._epoch_order()  # selectors may replace it
                self._emit("on_epoch_start")
                for idx in s.epoch_indices.split(sch.batch_size):
                    s.batch = self._to_device(self.task.batch("train", idx))  # {inputs..., labels [B], index [B]}
                    self._emit("before_step")
                    key = tuple((k, tuple(v.shape)) for k, v in s.batch.items())
                    if key not in self._flops_per_shape:
                        with clock.paused():
                            self._flops_per_shape[key] = self._meter_step(s.batch)
                    evaluations = self._train_step(s)
                    s.step += 1
                    s.samples_seen += len(idx)
                    step_opt = self._optimizer_flops.get(self._param_key(), 0.0)
                    s.flops += self._flops_per_shape[key] * evaluations + step_opt
                    s.optimizer_flops += step_opt
                    self._emit("after_step")
                    s.wall_time = clock.elapsed
                    if sch.eval_every and s.step % sch.eval_every == 0:
                        with clock.paused():
                            self._eval_and_log(sch.eval_fraction)
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
            self._emit("on_fit_end")  # post-training compression acts here, before the final eval
            s.wall_time = clock.elapsed
            if not s.pruned:
                self._eval_and_log(1.0)
        s.peak_rss_bytes = rss.peak
        if self.device.type == "cuda":
            s.peak_cuda_bytes = torch.cuda.max_memory_allocated(self.device)
        return s

    def _epoch_order(self) -> torch.Tensor:
        g = self.state.generator
        if self.rows is None:
            return torch.randperm(self.task.n_train, generator=g)
        return self.rows[torch.randperm(len(self.rows), generator=g)]

    def _train_step(self, s: TrainState) -> int:
        """One optimizer step; returns how many metered evaluations (forward+backward, or the zeroth-order
        optimizer's k forwards) it ran."""
        if not s.model.training:  # .train() walks every submodule: ~0.07 ms a step on a small CNN, so only on change
            s.model.train()
        calls = 1
        if self.forward_passes:  # zeroth-order optimizer: it perturbs weights and calls the closure itself
            # eval mode: the two perturbed losses must differ only by the perturbation, not by dropout masks
            # (MeZO's code turns dropout off; with it on, the projected gradient is mostly dropout noise)
            s.model.eval()
            try:
                with torch.no_grad():
                    loss = s.optimizer.step(lambda: self._loss(s.batch)[0])
            finally:
                s.model.train()
            s.loss = torch.as_tensor(loss).detach()
            self._check_finite(s.loss)
        elif self.closure_step:
            calls = 0

            def closure() -> torch.Tensor:  # the standard PyTorch closure; the first call's outputs are the step's
                nonlocal calls
                s.optimizer.zero_grad(set_to_none=True)
                loss = self._backward(s, first=calls == 0)
                calls += 1
                return loss

            s.optimizer.step(closure)
        else:
            loss = self._backward(s, first=True)
            if self.loss_step:
                s.optimizer.step(lambda: loss.detach())
            else:
                s.optimizer.step()
        if s.scheduler is not None and s.step + 1 < s.planned_steps:
            s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        return calls

    def _backward(self, s: TrainState, first: bool) -> torch.Tensor:
        """Forward, loss check, backward, ``after_backward``, gradient clipping; the first evaluation of a step
        sets the state's loss, per-sample loss and logits."""
        loss, per_sample, logits = self._loss(s.batch)
        self._check_finite(loss)
        loss.backward()
        if first:
            s.loss, s.per_sample_loss, s.logits = loss.detach(), per_sample.detach(), logits.detach()
        self._emit("after_backward")
        if self.schedule.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in s.model.parameters() if p.requires_grad], self.schedule.grad_clip)
        return loss

    def _loss(self, batch: TensorDict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.task.forward(self.state.model, batch)  # [B, C]
        per_sample = self.task.per_sample_loss(logits, batch)  # [B] (classification: cross-entropy)
        w = self.state.sample_weights
        loss = (per_sample * w.to(per_sample.device)[batch["index"]]).mean() if w is not None else per_sample.mean()
        return loss, per_sample, logits

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

    # ---- metering (excluded from train time) --------------------------------------------------------------
    def _meter_step(self, batch: TensorDict) -> float:
        """FLOPs of one train step for this batch shape (forward + backward, or k forwards for zeroth-order),
        and the bytes autograd saves for backward. Leaves model, grads and RNG exactly as they were."""
        model = self.state.model
        rng = torch.get_rng_state()
        buffers = {n: b.clone() for n, b in model.named_buffers()}  # e.g. BatchNorm running stats
        try:
            model.train()
            if self.forward_passes:
                with torch.no_grad():
                    fwd, _ = count_flops(lambda: self._loss(batch))
                return fwd * self.forward_passes
            with saved_activation_bytes() as act:
                fwd, (loss, _, _) = count_flops(lambda: self._loss(batch))
            bwd, _ = count_flops(loss.backward)
            self.activation_bytes = max(self.activation_bytes, act[0])
            if not self.closure_step and self._param_key() not in self._optimizer_flops:
                closure = (lambda: loss.detach()) if self.loss_step else None  # AliG reads the loss value
                self._optimizer_flops[self._param_key()] = optimizer_step_flops(self.state.optimizer, closure)
            return fwd + bwd
        finally:
            for p in model.parameters():
                p.grad = None
            named = dict(model.named_buffers())
            with torch.no_grad():
                for n, b in buffers.items():
                    named[n].copy_(b)
            torch.set_rng_state(rng)

    def _param_key(self) -> tuple:
        return tuple(tuple(p.shape) for p in self.state.model.parameters() if p.requires_grad)

    # ---- evaluation (excluded from train time) ------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, fraction: float = 1.0, batch_size: int = 256, split: str = "validation") -> Evaluation:
        """Metrics on ``split`` (a fixed seeded ``fraction`` of its rows for intermediate evals). The Trainer only
        ever evaluates validation; ``run_recipe`` scores test once, after training."""
        n_all = self.task.n_rows(split)
        rows = torch.arange(n_all) if fraction >= 1 else \
            torch.randperm(n_all, generator=torch.Generator().manual_seed(0))[:max(1, math.ceil(n_all * fraction))]
        self._optimizer_weights("eval")
        ev = self.task.evaluate(self.state.model, split, rows, batch_size, self._to_device)
        if not self._fit_done:
            self._optimizer_weights("train")
        return ev

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
        s.evaluation = self.evaluate(fraction)
        s.metrics = dict(s.evaluation.metrics)
        s.curve.append({"step": s.step, "epoch": s.epoch, "samples": s.samples_seen, "flops": s.flops,
                        "wall_time_s": s.wall_time, **s.metrics})
        self._emit("on_eval")

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

    def _lr_scheduler(self) -> Any:
        sch, s = self.schedule, self.state
        if sch.lr_schedule == "constant" and sch.warmup_ratio == 0:
            return None
        opt = s.optimizer
        if not isinstance(opt, torch.optim.Optimizer):
            return None  # e.g. zeroth-order optimizers manage their own step size
        total = max(1, int(s.planned_steps))
        if sch.lr_schedule == "onecycle":
            cyc = any(k in opt.defaults for k in ("momentum", "betas"))
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                       total_steps=total, pct_start=max(sch.warmup_ratio, 0.05),
                                                       cycle_momentum=cyc)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, sch))

    def _to_device(self, batch: TensorDict) -> TensorDict:
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)


def optimizer_step_flops(optimizer: Any, closure: Any = None) -> float:
    """Matmul FLOPs of one optimizer step (``torch.utils.flop_counter``: Muon's Newton–Schulz iterations and
    SOAP's / Shampoo's preconditioner products count; element-wise updates such as Adam's count 0, and
    decompositions such as QR or eigh are not counted). Measured on a copy of the optimizer whose parameters are
    clones carrying the current gradients, so the real parameters and state are untouched; the copy takes one
    uncounted step first (a first step often only initialises state) and the second step is counted."""
    import copy

    params = [p for g in optimizer.param_groups for p in g["params"]]
    memo: dict[int, Any] = {}
    for p in params:
        clone = p.detach().clone().requires_grad_(p.requires_grad)
        clone.grad = None if p.grad is None else p.grad.detach().clone()
        memo[id(p)] = clone
    # a shallow copy keeps the optimizer's own attributes (flags such as foreach); state and groups are copied
    # with every parameter replaced by its clone
    shadow = object.__new__(type(optimizer))  # not copy.copy: Optimizer.__getstate__ drops such attributes
    shadow.__dict__.update(optimizer.__dict__)
    shadow.state = copy.deepcopy(optimizer.state, memo)
    shadow.param_groups = copy.deepcopy(optimizer.param_groups, memo)
    rng = torch.get_rng_state()
    try:
        args = () if closure is None else (closure,)
        shadow.step(*args)
        flops, _ = count_flops(lambda: shadow.step(*args))
    except Exception as e:  # noqa: BLE001 - a meter must not kill a run; the gap is said, not hidden
        import warnings

        warnings.warn(f"could not meter {type(optimizer).__name__}'s step FLOPs ({type(e).__name__}: {e}); "
                      "optimizer_flops counts it as 0.", stacklevel=2)
        flops = 0.0
    finally:
        torch.set_rng_state(rng)
    return flops


def lr_factor(step: int, total: int, sch: Schedule) -> float:
    """Warmup (linear from 1/warm) then linear decay, cosine decay or constant: the LR multiplier at ``step``."""
    warm = int(sch.warmup_ratio * total)
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    if sch.lr_schedule == "linear":
        return max(0.0, 1 - t)
    if sch.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0
