"""Shared helpers of the compression axis: which layers a method may touch, calibration batches, and counting
what the tensors actually hold (the numbers every report is checked against)."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from ...engine.errors import check, check_fraction
from ...engine.task import is_head

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def tied_to_embedding(model: nn.Module) -> set[str]:
    """Names of layers whose weight is an embedding table's (a language model's tied output projection):
    compressing them would change the input embeddings too, so compressors leave them alone."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {n for n, m in model.named_modules()
            if not isinstance(m, nn.Embedding) and id(getattr(m, "weight", None)) in tables}


def target_layers(model: nn.Module, head: tuple[str, ...] = (), kinds: tuple[type, ...] = PRUNABLE,
                  include_head: bool = False) -> list[tuple[str, nn.Module]]:
    """(name, module) of the weight layers a compressor acts on; the task head and tied output embeddings are
    skipped unless asked."""
    tied = tied_to_embedding(model)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, kinds) and n not in tied and (include_head or not is_head(n, head))]


def check_removed_fraction(field: str, value: float, allow_zero: bool = True) -> None:
    """A fraction of weights (or units) removed: in [0, 1), or (0, 1) when removing nothing is meaningless."""
    check_fraction(field, value, "[" if allow_zero else "(", ")", "the fraction removed",
                   "Fix: give the fraction of weights to remove, e.g. 0.5.")


def weight_sparsity(layers: list[tuple[str, nn.Module]]) -> dict:
    """Counted from the tensors: zeros / total over the given layers' weights (and per layer)."""
    per, zeros, total = {}, 0, 0
    for n, m in layers:
        w = m.weight.detach()
        z = int((w == 0).sum())
        per[n] = z / w.numel()
        zeros, total = zeros + z, total + w.numel()
    return {"sparsity": zeros / max(total, 1), "layer_sparsity": per, "zeros": zeros, "weights": total}


def calibration_batches(task, n: int, batch_size: int = 64, split: str = "train") -> Iterator[dict]:
    """The first ``n`` rows of ``split`` in batches (deterministic), without labels' gradients."""
    n = min(n, task.n_rows(split))
    for i in range(0, n, batch_size):
        yield task.batch(split, torch.arange(i, min(i + batch_size, n)))


def model_forward(task, model: nn.Module, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
    return task.forward(model, {**inputs, "labels": batch["labels"]})


def require_task(task, method: str):
    check(task is not None, f"compress.{method}: task", task, "a Task (this method needs calibration data)",
          "Fix: call compress(model, task) with the task the model was trained on.")
    return task


@torch.no_grad()
def accuracy(task, model: nn.Module, split: str = "validation", n: int | None = None, batch_size: int = 128) -> float:
    """Top-1 accuracy on the first ``n`` rows of ``split`` (all if None). Choices (LASER's rank) use validation."""
    n = task.n_rows(split) if n is None else min(n, task.n_rows(split))
    return task.evaluate(model, split, torch.arange(n), batch_size).metrics["accuracy"] if n else 0.0


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
