"""The Trainer's step meter: FLOPs of every batch shape (forward + backward, or k forwards for zeroth-order), the
optimizer step's matmul FLOPs, and the bytes autograd saves for backward — measured outside train time and leaving
model, gradients, buffers and RNG exactly as they were.

The full batch is metered (with its saved-activation bytes) for the first batch and for any shape that could need
more activation memory than those metered so far; other shapes (dynamic padding makes many) meter one row and
scale by the batch size — exact for models whose FLOPs are linear in the batch, which the first batch verifies
(otherwise every shape is metered whole).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from .meters import count_flops, optimizer_step_flops, saved_activation_bytes
from .task import TensorDict

LossFn = Callable[[TensorDict], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class StepMeter:
    def __init__(self, model: torch.nn.Module, optimizer: Any, loss: LossFn, forward_passes: int = 0,
                 closure_step: bool = False, loss_step: bool = False):
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.forward_passes, self.closure_step, self.loss_step = forward_passes, closure_step, loss_step
        self.per_shape: dict[tuple, float] = {}
        self.optimizer_flops: dict[tuple, float] = {}  # per set of trainable-parameter shapes
        self.full_shapes: list[tuple[int, int]] = []  # (rows, width) of batches metered whole
        self.batch_linear: bool | None = None  # FLOPs(batch of B) == B × FLOPs(one row)? (checked once)
        self.activation_bytes = 0

    @staticmethod
    def key(batch: TensorDict) -> tuple:
        return tuple((k, tuple(v.shape)) for k, v in batch.items())

    def flops(self, batch: TensorDict) -> float:
        """FLOPs of one evaluation (forward+backward) of this batch's shape, metered on first sight."""
        key = self.key(batch)
        if key not in self.per_shape:
            self.per_shape[key] = self._meter(batch)
        return self.per_shape[key]

    def step_flops(self) -> float:
        return self.optimizer_flops.get(self.param_key(), 0.0)

    def param_key(self) -> tuple:
        return tuple(tuple(p.shape) for p in self.model.parameters() if p.requires_grad)

    def _meter(self, batch: TensorDict) -> float:
        n, width = len(batch["index"]), max((v.shape[1] for v in batch.values() if v.dim() >= 2), default=0)
        grows = not any(b >= n and w >= width for b, w in self.full_shapes)
        if grows or not self.batch_linear:
            flops = self._meter_once(batch, activations=True)
            self.full_shapes.append((n, width))
            if self.batch_linear is None and n > 1:
                self.batch_linear = self._meter_once(self.row(batch), activations=False) * n == flops
            return flops
        return self._meter_once(self.row(batch), activations=False) * n

    @staticmethod
    def row(batch: TensorDict) -> TensorDict:
        return {k: v[:1] for k, v in batch.items()}

    def _meter_once(self, batch: TensorDict, activations: bool = True) -> float:
        model = self.model
        rng = torch.get_rng_state()
        buffers = {n: b.clone() for n, b in model.named_buffers()}  # e.g. BatchNorm running stats
        modes = [(m, m.training) for m in model.modules()]  # e.g. a frozen prefix the Trainer keeps in eval mode
        try:
            model.train()
            if self.forward_passes:
                with torch.no_grad():
                    fwd, _ = count_flops(lambda: self.loss(batch))
                return fwd * self.forward_passes
            with saved_activation_bytes() as act:
                fwd, (loss, _, _) = count_flops(lambda: self.loss(batch))
            bwd, _ = count_flops(loss.backward)
            if activations:
                self.activation_bytes = max(self.activation_bytes, act[0])
            if not self.closure_step and self.param_key() not in self.optimizer_flops:
                closure = (lambda: loss.detach()) if self.loss_step else None  # AliG reads the loss value
                self.optimizer_flops[self.param_key()] = optimizer_step_flops(self.optimizer, closure)
            return fwd + bwd
        finally:
            for p in model.parameters():
                p.grad = None
            named = dict(model.named_buffers())
            with torch.no_grad():
                for n, b in buffers.items():
                    named[n].copy_(b)
            torch.set_rng_state(rng)
            for m, training in modes:
                m.training = training
