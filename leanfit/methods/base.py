"""Small abstract bases for the five axes (≤3 abstract methods each, STYLE rule 5).

Every method module has: a config dataclass validated in ``__post_init__``, a pure function that tests check
against the paper or a reference library, and a thin class registered with ``leanfit.registry.register``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

from ..callbacks import Callback

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..tasks.base import Task


def trainable_named_parameters(model: "nn.Module") -> list[tuple[str, "torch.nn.Parameter"]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def mark_head_trainable(model: "nn.Module", head: tuple[str, ...]) -> None:
    """Unfreeze the task head (module-name prefixes); adapters call this after freezing the backbone."""
    for n, p in model.named_parameters():
        if any(n == h or n.startswith(h + ".") or f".{h}." in f".{n}" for h in head):
            p.requires_grad_(True)


class Adapter(ABC):
    """Turns a fresh model into one whose trainable parameters are the method's (plus the task head).

    Contract (tests/contract): after ``apply`` only adapter + head params require grad; the forward equals the
    base model's at init where the paper says so; ``merge`` (if ``mergeable``) folds the adapter into the base
    weights without changing the function.
    """

    mergeable: bool = False

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def apply(self, model: "nn.Module", task: "Task") -> "nn.Module":
        """Attach the adapter, freeze everything else except ``task.head``; return the model to train."""

    def merge(self, model: "nn.Module") -> "nn.Module":
        raise NotImplementedError(f"{type(self).__name__} cannot be merged into the base weights")


class OptimMethod(ABC):
    """Builds a torch optimizer from the trainable named parameters.

    An optimizer that needs only forward passes (e.g. MeZO) sets ``forward_passes_per_step = k`` on the optimizer
    object and implements ``step(closure)`` where ``closure()`` returns the loss without calling backward; the
    Trainer then skips backward and counts k forward passes of FLOPs per step.

    An optimizer that needs the loss or several evaluations per step (Polyak steps, L-BFGS, SAM) sets
    ``needs_closure = True``; the Trainer then calls ``step(closure)`` with the standard PyTorch closure (zero
    grads, forward, backward, return the loss) and counts one forward+backward of FLOPs per closure call. One that
    only reads the loss value after the usual backward sets ``needs_loss = True`` and gets ``step(lambda: loss)``.
    """

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def build(self, named_params: list[tuple[str, "torch.nn.Parameter"]]) -> "torch.optim.Optimizer":
        ...


class DataSelector(Callback):
    """Chooses which train rows each epoch visits (``state.epoch_indices``) and/or their loss weights
    (``state.sample_weights``) in ``on_epoch_start``. Static selectors score once, dynamic ones every epoch.
    Scoring cost (FLOPs) is added to ``state.flops``; its wall time counts as train time."""

    def __init__(self, config: Any):
        self.config = config


class Compressor(Callback):
    """Shrinks a model. ``compress(model, task)`` acts once (post-training); schedule-based methods act through
    the Trainer hooks. Returns a report whose numbers (sparsity, rank, bits) must equal what the tensors show."""

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def compress(self, model: "nn.Module", task: "Task | None" = None) -> Mapping[str, Any]:
        ...

    def on_fit_end(self, state) -> None:  # default: compress once after training
        state.extra.setdefault("compress", []).append(dict(self.compress(state.model, state.task)))


class Merger(ABC):
    """Merges fine-tuned state dicts that share a base: ``merge(base, finetuned) -> merged state dict``."""

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def merge(self, base: Mapping[str, "torch.Tensor"] | None, finetuned: list[Mapping[str, "torch.Tensor"]]) -> dict:
        ...
