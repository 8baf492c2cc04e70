"""The Task: a fresh model, three tensor datasets (train, validation, test), a forward function, its loss and
its metrics; the task registry (``register_task``, ``build_task``) and the one rule for "is this parameter part of
the task head?" (``is_head``).

Data is held as a dict of equal-length tensors (text is tokenised once, padded to a fixed length), so a batch is
an index tensor away, selectors can score any subset by index, and every batch of one size has one shape (which
lets the FLOP meter count each shape once).

Validation is what everything chooses on (search, stopping, LR and rank picks); test is scored once per finished
run (``run_recipe``) and never read by anything that chooses.
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
from .errors import ConfigError
from .metrics import Evaluation, classification_evaluation

TensorDict = dict[str, torch.Tensor]
SPLITS = ("train", "validation", "test")


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
    - ``train`` / ``validation`` / ``test``: dicts of tensors with a ``labels`` key, all of the same length.
    - ``head``: module-name prefixes of the task head; adapters keep these trainable.
    - ``target_modules``: default Linear-layer name suffixes adapters attach to (peft semantics).
    - ``meta["labels"]``: class names, when the task has them.

    A task kind other than classification subclasses Task and overrides ``per_sample_loss`` and ``evaluate``.
    """

    name: str
    build_model: Callable[[int], nn.Module]
    train: TensorDict
    validation: TensorDict
    test: TensorDict
    num_classes: int
    head: tuple[str, ...] = ("head",)
    target_modules: tuple[str, ...] = ()
    forward: Callable[[nn.Module, TensorDict], torch.Tensor] = default_forward
    metric: str = "accuracy"
    description: str = ""
    meta: dict = field(default_factory=dict)
    # Applied to every batch after the rows are picked, e.g. trimming token padding to the batch's longest row.
    collate: Callable[[TensorDict], TensorDict] | None = None
    eval_batch_size: int = 256  # rows per forward when evaluating or scoring (small for large-vocabulary LMs)
    kind: str = "classification"  # or "causal-lm": methods that need class labels check it

    def __post_init__(self) -> None:
        for split in SPLITS:
            data = self.split(split)
            if "labels" not in data:
                raise ValueError(f"task {self.name}: {split} data has no 'labels' tensor (keys: {sorted(data)})")
            n = {len(v) for v in data.values()}
            if len(n) != 1:
                raise ValueError(f"task {self.name}: {split} tensors differ in length: { {k: len(v) for k, v in data.items()} }")

    def split(self, name: str) -> TensorDict:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, but got {name!r}")
        return getattr(self, name)

    def n_rows(self, split: str) -> int:
        return len(self.split(split)["labels"])

    @property
    def n_train(self) -> int:
        return self.n_rows("train")

    @property
    def n_validation(self) -> int:
        return self.n_rows("validation")

    @property
    def n_test(self) -> int:
        return self.n_rows("test")

    def is_head(self, name: str) -> bool:
        return is_head(name, self.head)

    def batch(self, split: str, index: torch.Tensor) -> TensorDict:
        out = {k: v[index] for k, v in self.split(split).items()}
        out["index"] = index
        return self.collate(out) if self.collate is not None else out

    def lengths(self, split: str) -> torch.Tensor | None:
        """Real (unpadded) tokens per row, for token costs and length-grouped batching; None for non-token data."""
        mask = self.split(split).get("attention_mask")
        return None if mask is None else mask.sum(1)

    def token_counts(self, batch: TensorDict) -> tuple[int, int]:
        """(real, padded) tokens in a batch: what the model attended to and what it computed on."""
        mask = batch.get("attention_mask")
        return (0, 0) if mask is None else (int(mask.sum()), mask.numel())

    def per_sample_loss(self, outputs: torch.Tensor, batch: TensorDict) -> torch.Tensor:
        """The training loss of each row [B] from the forward's outputs (classification: cross-entropy)."""
        return torch.nn.functional.cross_entropy(outputs, batch["labels"], reduction="none")

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, split: str = "validation", rows: torch.Tensor | None = None,
                 batch_size: int | None = None, to_device: Callable[[TensorDict], TensorDict] | None = None,
                 forward: Callable[[nn.Module, TensorDict], torch.Tensor] | None = None) -> Evaluation:
        """Metrics of ``model`` on ``rows`` of ``split`` (all, in order, if None), in eval mode; the model's
        train/eval mode is restored afterwards. Classification: accuracy, eval_loss, macro-F1, per-class
        precision/recall, the confusion matrix and a flag when predictions collapse to the majority baseline.
        ``forward`` overrides ``self.forward`` (e.g. a head on cached features)."""
        rows = torch.arange(self.n_rows(split)) if rows is None else rows
        was_training = model.training
        model.eval()
        logits, labels = [], []
        for idx in rows.split(batch_size or self.eval_batch_size):
            b = self.batch(split, idx)
            b = to_device(b) if to_device else b
            logits.append((forward or self.forward)(model, b).float().cpu())
            labels.append(b["labels"].cpu())
        model.train(was_training)
        return classification_evaluation(torch.cat(logits), torch.cat(labels), self.num_classes,
                                         self.meta.get("labels") or None)

    def data_hash(self) -> str:
        """Stable hash of the three splits' tensors, stored in every RunResult."""
        h = hashlib.sha256()
        for split in SPLITS:
            data = self.split(split)
            h.update(split.encode())
            for k in sorted(data):
                h.update(k.encode())
                h.update(data[k].contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def trim_padding(multiple: int = 8) -> Callable[[TensorDict], TensorDict]:
    """A collate that cuts right-padded token tensors (``input_ids``, ``attention_mask``, ``token_type_ids``,
    ``labels`` of the same width) to the batch's longest real row, rounded up to ``multiple`` (few distinct shapes,
    friendlier kernels) — dynamic padding, as Hugging Face's DataCollatorWithPadding(pad_to_multiple_of=...)."""
    def collate(batch: TensorDict) -> TensorDict:
        mask = batch["attention_mask"]
        width = mask.shape[1]
        longest = int(mask.sum(1).max()) if len(mask) else width
        keep = min(width, -(-max(longest, 1) // multiple) * multiple)
        if keep == width:
            return batch
        return {k: (v[:, :keep] if v.dim() >= 2 and v.shape[1] == width else v) for k, v in batch.items()}

    return collate


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic stratified split of row ids into (rest, held) with ``fraction`` of each class held out
    (at least one row per class)."""
    g = torch.Generator().manual_seed(seed)
    tr, ev = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(len(idx) * fraction))
        ev.append(idx[:k])
        tr.append(idx[k:])
    return torch.cat(tr).sort().values, torch.cat(ev).sort().values


def three_way_split(labels: torch.Tensor, validation_fraction: float, test_fraction: float,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified (train, validation, test) row ids: test is ``test_fraction`` of all rows, validation
    ``validation_fraction`` of all rows, carved from what test leaves (fixed seeds: seed for test, seed+1 for
    validation)."""
    rest, test = stratified_split(labels, test_fraction, seed)
    tr, val = stratified_split(labels[rest], validation_fraction / max(1e-12, 1 - test_fraction), seed + 1)
    return rest[tr], rest[val], test


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
    """A registered task, or a ``module:function`` returning a Task (code the user wrote)."""
    if ":" in name and not registry.is_registered("tasks", name):
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
