"""Frozen-prefix feature caching: when only the task head trains, everything below it is a fixed function of the
input (in eval mode), so its output — the head's input — is computed once per row and training runs the head
alone. Written here because no maintained library caches activations for an arbitrary PyTorch model inside a
training loop (HF's Trainer recomputes the frozen encoder every step).

Three modes (``schedule.frozen_prefix``): ``cache`` (default) computes the head's inputs once, in eval mode, and
charges that pass to the run's FLOPs and time; ``eval`` recomputes them every step in eval mode (the same function,
the reference a cached run must match); ``train`` recomputes them in train mode, dropout and all (what a plain
training loop does).
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
    """The head's inputs for every row of a split, from the frozen model in eval mode."""

    def __init__(self, model: nn.Module, task: Task, head: nn.Module, batch_size: int = 256,
                 to_device: Callable[[TensorDict], TensorDict] = lambda b: b):
        self.model, self.task, self.head, self.to_device = model, task, head, to_device
        self.batch_size = batch_size
        self.features: dict[str, torch.Tensor] = {}
        self.flops = 0.0

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

    @torch.inference_mode()
    def build(self, split: str) -> torch.Tensor:
        """Compute (and keep) the head inputs of ``split``; checks on the first batch that the model's output is the
        head applied to them, so nothing after the head is skipped. FLOPs of the pass are added to ``flops``."""
        was = self.model.training
        self.model.eval()
        try:
            chunks = []
            for i, idx in enumerate(torch.arange(self.task.n_rows(split)).split(self.batch_size)):
                batch = self.to_device(self.task.batch(split, idx))
                flops, (x, out) = count_flops(lambda: self._inputs(batch))
                self.flops += flops
                if i == 0 and not torch.allclose(self.head(x).float(), out.float(), atol=1e-6, rtol=1e-5):
                    raise _NotCacheable("the model's output is not the head applied to its input")
                chunks.append(x)
            self.features[split] = torch.cat(chunks)
        finally:
            self.model.train(was)
        return self.features[split]

    def forward(self, split: str) -> Callable[[nn.Module, TensorDict], torch.Tensor]:
        """A drop-in for ``task.forward`` on ``split``: the head on the cached inputs of the batch's rows."""
        feats = self.features[split]
        return lambda model, batch: self.head(feats[batch["index"].to(feats.device)])


class _NotCacheable(Exception):
    pass


def try_cache(model: nn.Module, task: Task, to_device: Callable[[TensorDict], TensorDict]) -> FeatureCache | None:
    """A FeatureCache with the train split's head inputs, or None when the run is not head-only or the model does
    not end in its head."""
    head = head_module(model, task)
    if head is None:
        return None
    cache = FeatureCache(model, task, head, to_device=to_device)
    try:
        cache.build("train")
    except _NotCacheable:
        return None
    return cache


def set_frozen_mode(model: nn.Module, head: nn.Module, mode: str) -> None:
    """Train mode for the head; the frozen prefix in eval mode unless ``mode == 'train'``."""
    model.train()
    if mode != "train":
        model.eval()
        head.train()
