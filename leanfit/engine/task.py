"""The Task: a fresh model, tensor datasets, a forward function and a metric; the task registry (``register_task``,
``build_task``) and the one rule for "is this parameter part of the task head?" (``is_head``).

Data is held as a dict of equal-length tensors (text is tokenised once, padded to a fixed length), so a batch is
an index tensor away, selectors can score any subset by index, and every batch of one size has one shape (which
lets the FLOP meter count each shape once).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from . import registry
from .errors import ConfigError, check_code_allowed

TensorDict = dict[str, torch.Tensor]


def is_head(name: str, head: Iterable[str]) -> bool:
    """Whether a parameter or module name belongs to the task head (module-name prefixes ``head``).

    Matches the prefix itself (``classifier``, ``classifier.weight``) and the same module inside a wrapper, as
    peft nests it (``base_model.model.classifier.modules_to_save.default.weight``)."""
    return any(name == h or name.startswith(h + ".") or f".{h}." in f".{name}." for h in head)


def default_forward(model: nn.Module, batch: TensorDict) -> torch.Tensor:
    """Models take the non-label tensors as keyword arguments and return logits (or an object with .logits)."""
    out = model(**{k: v for k, v in batch.items() if k not in ("labels", "index")})
    return getattr(out, "logits", out)


@dataclass
class Task:
    """Everything a run needs besides the recipe.

    - ``build_model(seed)`` returns a fresh model (pretrained weights + freshly initialised head).
    - ``train`` / ``eval``: dicts of tensors with a ``labels`` key, all of the same length.
    - ``head``: module-name prefixes of the task head; adapters keep these trainable.
    - ``target_modules``: default Linear-layer name suffixes adapters attach to (peft semantics).
    """

    name: str
    build_model: Callable[[int], nn.Module]
    train: TensorDict
    eval: TensorDict
    num_classes: int
    head: tuple[str, ...] = ("head",)
    target_modules: tuple[str, ...] = ()
    forward: Callable[[nn.Module, TensorDict], torch.Tensor] = default_forward
    metric: str = "accuracy"
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split, data in (("train", self.train), ("eval", self.eval)):
            if "labels" not in data:
                raise ValueError(f"task {self.name}: {split} data has no 'labels' tensor (keys: {sorted(data)})")
            n = {len(v) for v in data.values()}
            if len(n) != 1:
                raise ValueError(f"task {self.name}: {split} tensors differ in length: { {k: len(v) for k, v in data.items()} }")

    @property
    def n_train(self) -> int:
        return len(self.train["labels"])

    @property
    def n_eval(self) -> int:
        return len(self.eval["labels"])

    def is_head(self, name: str) -> bool:
        return is_head(name, self.head)

    def batch(self, split: str, index: torch.Tensor) -> TensorDict:
        data = self.train if split == "train" else self.eval
        out = {k: v[index] for k, v in data.items()}
        out["index"] = index
        return out

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "eval", rows: torch.Tensor | None = None, batch_size: int = 256,
                 to_device: Callable[[TensorDict], TensorDict] | None = None) -> dict[str, float]:
        """Accuracy and mean cross-entropy (``eval_loss``) of ``model`` on ``rows`` of ``split`` (all, in order, if
        None), in eval mode; the model's train/eval mode is restored afterwards."""
        n_rows = self.n_train if split == "train" else self.n_eval
        rows = torch.arange(n_rows) if rows is None else rows
        was_training = model.training
        model.eval()
        correct, loss_sum = 0, 0.0
        for idx in rows.split(batch_size):
            b = self.batch(split, idx)
            b = to_device(b) if to_device else b
            logits = self.forward(model, b).float()
            loss_sum += torch.nn.functional.cross_entropy(logits, b["labels"], reduction="sum").item()
            correct += (logits.argmax(-1) == b["labels"]).sum().item()
        model.train(was_training)
        n = len(rows)
        return {"accuracy": correct / n, "eval_loss": loss_sum / n}

    def data_hash(self) -> str:
        """Stable hash of the train/eval tensors, stored in every RunResult."""
        h = hashlib.sha256()
        for split in (self.train, self.eval):
            for k in sorted(split):
                h.update(k.encode())
                h.update(split[k].contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def stratified_split(labels: torch.Tensor, eval_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic stratified split into (train_idx, eval_idx)."""
    g = torch.Generator().manual_seed(seed)
    tr, ev = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(len(idx) * eval_fraction))
        ev.append(idx[:k])
        tr.append(idx[k:])
    return torch.cat(tr).sort().values, torch.cat(ev).sort().values


# ---- the task registry (tasks are one kind of the one registry) -----------------------------------------------
def register_task(name: str, summary: str):
    """Decorator for a function returning a Task; its keyword parameters become the task's validated config."""
    def deco(fn: Callable[..., Task]):
        cfg = registry.signature_config(fn, f"{fn.__name__}_config")
        registry.add(registry.Entry("tasks", name, lambda c, fn=fn: fn(**registry.config_kwargs(c)), cfg, summary))
        return fn

    return deco


def list_tasks() -> list[registry.Entry]:
    return registry.list_methods("tasks")


def get_task_entry(name: str) -> registry.Entry:
    """A registered task, or a ``module:function`` returning a Task (code the user wrote; only with the opt-in,
    ``--allow-code`` / ``LEANFIT_ALLOW_CODE=1``)."""
    if ":" in name and not registry.is_registered("tasks", name):
        check_code_allowed(f"task {name!r}")  # recipes are data: importing code needs an explicit opt-in
        mod, _, fn = name.partition(":")
        try:
            f = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"task {name!r}: cannot import {fn!r} from module {mod!r} ({e}). "
                              f"Fix: make sure the module is importable (on PYTHONPATH) and defines {fn}().") from None
        cfg = registry.signature_config(f, "user_task_config")
        return registry.Entry("tasks", name, lambda c: f(**registry.config_kwargs(c)), cfg, f"user task {name}")
    return registry.get("tasks", name)


def build_task(name: str, **params: Any) -> Task:
    """Build (and cache in-process) a task's data; ``task.build_model(seed)`` still returns a fresh model."""
    return _build_cached(name, json.dumps(params, sort_keys=True, default=str))


@functools.lru_cache(maxsize=8)
def _build_cached(name: str, params_json: str) -> Task:
    task = get_task_entry(name).build(json.loads(params_json))
    if not isinstance(task, Task):
        raise ConfigError(f"task {name!r} must return a leanfit Task, but returned {type(task).__name__}.")
    return task
