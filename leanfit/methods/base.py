"""The contract of each axis, as small abstract base classes (≤3 abstract methods each, STYLE rule 5).

Every method module has: a config dataclass validated in ``__post_init__``, a pure function that tests check
against the paper or a reference library, and a thin class registered with ``leanfit.engine.registry.register``
(its :class:`~leanfit.engine.registry.Capabilities` say what else it can do). The contract tests in
``tests/contract`` run over every registered method of an axis, so no method can skip them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

from ..engine.callbacks import Callback, TrainState
from ..engine.meters import trainable_named_parameters
from ..engine.task import is_head

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..engine.task import Task

__all__ = ["Adapter", "Compressor", "DataSelector", "Merger", "OptimMethod", "mark_head_trainable",
           "trainable_named_parameters"]


def mark_head_trainable(model: "nn.Module", head: tuple[str, ...]) -> None:
    """Unfreeze the task head (module-name prefixes); adapters call this after freezing the backbone."""
    for n, p in model.named_parameters():
        if is_head(n, head):
            p.requires_grad_(True)


class Adapter(ABC):
    """Turns a fresh model into one whose trainable parameters are the method's (plus the task head).

    Must provide: ``apply``; ``param_formula`` (the paper's trainable-parameter count from the un-adapted model's
    shapes, head included; ``None`` where there is no closed form); ``identity_at_init`` (the adapted model
    computes the base model's function before training). Mergeable methods set ``mergeable`` and implement
    ``merge`` (fold the adapter into plain layers without changing the function).
    """

    mergeable: bool = False

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def apply(self, model: "nn.Module", task: "Task") -> "nn.Module":
        """Attach the adapter, freeze everything else except ``task.head``; return the model to train."""

    @abstractmethod
    def param_formula(self, model: "nn.Module", task: "Task") -> int | None:
        """Trainable parameters per the paper, computed from the un-adapted ``model`` (+ the task head)."""

    @property
    @abstractmethod
    def identity_at_init(self) -> bool:
        """Whether the adapted model equals the base model before training (a class attribute is enough)."""

    def merge(self, model: "nn.Module") -> "nn.Module":
        raise NotImplementedError(f"{type(self).__name__} cannot be merged into the base weights")


class OptimMethod(ABC):
    """Builds a torch optimizer from the trainable named parameters (``task`` tells which are the head's).

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
    def build(self, named_params: list[tuple[str, "torch.nn.Parameter"]],
              task: "Task | None" = None) -> "torch.optim.Optimizer":
        ...


class DataSelector(Callback):
    """Chooses which train rows each epoch visits (``state.epoch_indices``) and/or their loss weights
    (``state.sample_weights``) in ``on_fit_start`` / ``on_epoch_start``, and reports in ``state.data_report``
    (``kept_rows``; ``scoring`` = {method, flops, wall_time_s} when it scores rows). Proxy models train through
    ``state.fit_proxy`` (a nested Trainer); scoring FLOPs are added to ``state.flops``, and their wall time counts
    as train time. A selector that shrinks the epochs re-plans ``state.planned_steps``."""

    def __init__(self, config: Any):
        self.config = config


class Compressor(Callback):
    """Shrinks a model. ``compress(model, task)`` acts once (post-training); methods registered with
    ``during_training`` act through the Trainer hooks. The report's numbers (sparsity, rank, bits) must equal what
    the tensors show."""

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def compress(self, model: "nn.Module", task: "Task | None" = None) -> Mapping[str, Any]:
        ...

    def on_fit_end(self, state: TrainState) -> None:  # default: compress once after training
        state.compress_reports.append(dict(self.compress(state.model, state.task)))


class Merger(ABC):
    """Merges fine-tuned state dicts that share a base: ``merge(base, finetuned, **inputs) -> merged state dict``.
    ``inputs`` are what the method's ``Capabilities.inputs`` asks for (per-model diagonal Fishers, input rows),
    supplied by the merge workflow from the models and tasks."""

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def merge(self, base: Mapping[str, "torch.Tensor"] | None, finetuned: list[Mapping[str, "torch.Tensor"]],
              **inputs: Any) -> dict:
        ...
