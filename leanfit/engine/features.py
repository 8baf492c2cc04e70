"""Frozen-prefix feature caching: when only the task head trains, everything below it is a fixed function of the
input (in eval mode), so its output — the head's input — is computed once per row and training runs the head
alone. Written here because no maintained library caches activations for an arbitrary PyTorch model inside a
training loop (HF's Trainer recomputes the frozen encoder every step).

Three modes (``schedule.frozen_prefix``): ``cache`` (default) computes each row's head input once, in eval mode, the
first time a step uses the row, and charges that to the run's FLOPs and time — so a run that trains on a subset
(a data selector) pays only for the rows it uses; ``eval`` recomputes them every step in eval mode (the same
function, the reference a cached run must match); ``train`` recomputes them in train mode, dropout and all (what a
plain training loop does).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .meters import count_flops
from .task import Task, TensorDict



def head_module(model: nn.Module, task: Task) -> nn.Module | None:
    """The task head's module when it is the only thing that trains (head-only), else None."""
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if len(task.head) != 1 or not trainable or not all(task.is_head(n) for n in trainable):
        return None
    try:
        return model.get_submodule(task.head[0])
    except AttributeError:
        return None


class FeatureCache:
    """The head's inputs per row of a split, from the frozen model in eval mode, computed on first use."""

    def __init__(self, model: nn.Module, task: Task, head: nn.Module, batch_size: int = 256,
                 to_device: Callable[[TensorDict], TensorDict] = lambda b: b):
        self.model, self.task, self.head, self.to_device = model, task, head, to_device
        self.batch_size = batch_size
        self.features: dict[str, torch.Tensor] = {}
        self.have: dict[str, torch.Tensor] = {}  # per split: which rows are computed
        self.split_flops: dict[str, float] = {}  # FLOPs spent computing each split's features

    def _inputs(self, batch: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """(head input, model output) for one batch, capturing the head's input with a pre-hook."""
        seen: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
        try:
            out = self.task.forward(self.model, batch)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise _NotCacheable(f"the head ran {len(seen)} times in one forward")
        return seen[0], out

    @torch.no_grad()
    def check(self) -> None:
        """Raise _NotCacheable unless the model's output is the head applied to its input (so nothing after the
        head would be skipped), on two train rows in eval mode; like metering, nothing is kept or charged."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            x, out = self._inputs(self.to_device(self.task.batch("train", torch.arange(min(2, self.task.n_train)))))
            if not torch.allclose(self.head(x).float(), out.float(), atol=1e-6, rtol=1e-5):
                raise _NotCacheable("the model's output is not the head applied to its input")
        finally:
            for m, mode in modes:
                m.training = mode

    @torch.no_grad()  # not inference_mode: the stored features feed the head's autograd graph
    def ensure(self, split: str, rows: torch.Tensor) -> None:
        """Compute the head inputs of ``rows`` of ``split`` not computed yet, in eval mode (every module's mode
        restored after), adding their FLOPs to ``split_flops[split]``."""
        have = self.have.get(split)
        missing = rows.cpu() if have is None else rows.cpu()[~have[rows.cpu()]]
        if not len(missing):
            return
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            for idx in torch.unique(missing).split(self.batch_size):
                batch = self.to_device(self.task.batch(split, idx))
                flops, (x, out) = count_flops(lambda: self._inputs(batch))
                self.split_flops[split] = self.split_flops.get(split, 0.0) + flops
                if split not in self.features:
                    n = self.task.n_rows(split)
                    self.features[split] = torch.empty((n, *x.shape[1:]), dtype=x.dtype, device=x.device)
                    self.have[split] = torch.zeros(n, dtype=torch.bool)
                self.features[split][idx.to(x.device)] = x
                self.have[split][idx] = True
        finally:
            for m, mode in modes:
                m.training = mode

    def build(self, split: str) -> torch.Tensor:
        """The head inputs of every row of ``split`` (computed now where missing)."""
        self.ensure(split, torch.arange(self.task.n_rows(split)))
        return self.features[split]

    def forward(self, split: str) -> Callable[[nn.Module, TensorDict], torch.Tensor]:
        """A drop-in for ``task.forward`` on ``split``: the head on the cached inputs of the batch's rows, computing
        the rows it has not seen yet."""
        def run(model: nn.Module, batch: TensorDict) -> torch.Tensor:
            self.ensure(split, batch["index"])
            feats = self.features[split]
            return self.head(feats[batch["index"].to(feats.device)])

        return run


class _NotCacheable(Exception):
    pass


def try_cache(model: nn.Module, task: Task, to_device: Callable[[TensorDict], TensorDict],
              prefill: bool = False) -> FeatureCache | None:
    """A FeatureCache for a head-only run (``prefill``: with every train row computed now, as one pass), or None
    when the run is not head-only or the model does not end in its head."""
    head = head_module(model, task)
    if head is None:
        return None
    cache = FeatureCache(model, task, head, to_device=to_device)
    try:
        cache.check()
    except _NotCacheable:
        return None
    if prefill:
        cache.build("train")
    return cache


def set_frozen_mode(model: nn.Module, head: nn.Module, mode: str) -> None:
    """Train mode for the head; the frozen prefix in eval mode unless ``mode == 'train'``."""
    model.train()
    if mode != "train":
        model.eval()
        head.train()
