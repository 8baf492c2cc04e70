"""Recipe: one choice per axis plus the schedule and seed. Frozen, loaded from YAML/JSON (data, never code),
validated against the registry, round-trips exactly, and hashes to a stable id.

    task: digits-mlp                      # or {name: text-file, model: ..., train: ..., ...}
    adapter: {name: lora, r: 8}
    optimizer: {name: adamw, lr: 1.0e-3}
    data: {name: rs2, fraction: 0.3}      # optional
    compress: [{name: magnitude, sparsity: 0.5}]
    schedule: {epochs: 3, batch_size: 32, lr_schedule: cosine, warmup_ratio: 0.1}
    seed: 0
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, check, check_keys

LR_SCHEDULES = ("constant", "linear", "cosine", "onecycle")
FROZEN_PREFIX = ("cache", "eval", "train")
PRECISIONS = ("fp32", "bf16")
MONITORS = ("accuracy", "macro_f1", "eval_loss", "perplexity", "rank_accuracy", "token_accuracy")


def _freeze(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    def fz(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((k, fz(x)) for k, x in v.items()))
        if isinstance(v, list):
            return tuple(fz(x) for x in v)
        return v

    return tuple(sorted((k, fz(v)) for k, v in params.items()))


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple):
        if all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v) and v:
            return {k: _thaw(x) for k, x in v}
        return [_thaw(x) for x in v]
    return v


@dataclass(frozen=True)
class MethodSpec:
    """A method name on one axis plus its parameters (validated by the method's config dataclass)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, value: Any, field_name: str) -> "MethodSpec":
        if isinstance(value, MethodSpec):
            return value
        if isinstance(value, str):
            return cls(value.lower())
        if isinstance(value, Mapping) and isinstance(value.get("name"), str):
            rest = {k: v for k, v in value.items() if k != "name"}
            return cls(value["name"].lower(), _freeze(rest))
        raise ConfigError(
            f"{field_name} must be a method name or a mapping with a 'name' key, but got {value!r}. "
            f"Fix: e.g. {field_name}: {{name: lora, r: 8}}"
        )

    @property
    def kwargs(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.kwargs}


@dataclass(frozen=True)
class Schedule:
    epochs: int = 3
    batch_size: int = 32
    max_steps: int | None = None  # budget: stop after this many optimizer steps
    max_samples: int | None = None  # budget: stop after this many training samples
    max_flops: float | None = None  # budget: stop after this many train FLOPs
    max_minutes: float | None = None  # budget: stop after this much train wall time
    lr_schedule: str = "constant"
    warmup_ratio: float = 0.0
    grad_clip: float | None = None
    eval_every: int | None = None  # steps between evals; None = once per epoch
    eval_fraction: float = 1.0  # fraction of the validation set used (fixed seeded rows) for intermediate evals
    group_by_length: bool = False  # batch rows of similar length together (token tasks; HF's group_by_length)
    frozen_prefix: str = "cache"  # head-only runs: cache | eval | train (engine/features.py)
    grad_accum: int = 1  # micro-batches of batch_size per optimizer step (effective batch = batch_size × grad_accum)
    gradient_checkpointing: bool = False  # recompute activations in backward (Hugging Face models)
    precision: str = "fp32"  # fp32 | bf16 (autocast for the training forward)
    early_stopping_patience: int | None = None  # stop after this many validation evals without improvement
    keep_best: bool = False  # end with the weights of the best validation eval (engine/best.py)
    monitor: str = "accuracy"  # the validation metric early stopping and keep_best follow
    min_delta: float = 0.0  # an improvement smaller than this does not count

    def __post_init__(self) -> None:
        check(isinstance(self.epochs, int) and self.epochs >= 1, "schedule.epochs", self.epochs, "an integer ≥ 1")
        check(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65536, "schedule.batch_size",
              self.batch_size, "an integer in [1, 65536]")
        for name in ("max_steps", "max_samples"):
            v = getattr(self, name)
            check(v is None or (isinstance(v, int) and v >= 1), f"schedule.{name}", v, "an integer ≥ 1 or null")
        for name in ("max_flops", "max_minutes"):
            v = getattr(self, name)
            check(v is None or (isinstance(v, (int, float)) and v > 0), f"schedule.{name}", v, "a number > 0 or null")
        check(self.lr_schedule in LR_SCHEDULES, "schedule.lr_schedule", self.lr_schedule, f"one of {LR_SCHEDULES}")
        check(isinstance(self.warmup_ratio, (int, float)) and 0 <= self.warmup_ratio < 1, "schedule.warmup_ratio",
              self.warmup_ratio, "a number in [0, 1)")
        check(self.grad_clip is None or (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0),
              "schedule.grad_clip", self.grad_clip, "a number > 0 or null")
        check(self.eval_every is None or (isinstance(self.eval_every, int) and self.eval_every >= 1),
              "schedule.eval_every", self.eval_every, "an integer ≥ 1 or null")
        check(isinstance(self.eval_fraction, (int, float)) and 0 < self.eval_fraction <= 1,
              "schedule.eval_fraction", self.eval_fraction, "a number in (0, 1]")
        check(isinstance(self.group_by_length, bool), "schedule.group_by_length", self.group_by_length, "true or false")
        check(self.frozen_prefix in FROZEN_PREFIX, "schedule.frozen_prefix", self.frozen_prefix,
              f"one of {FROZEN_PREFIX}", "Fix: cache (compute the frozen part once), eval or train (recompute it).")
        check(isinstance(self.grad_accum, int) and not isinstance(self.grad_accum, bool) and self.grad_accum >= 1,
              "schedule.grad_accum", self.grad_accum, "an integer ≥ 1")
        check(isinstance(self.gradient_checkpointing, bool), "schedule.gradient_checkpointing",
              self.gradient_checkpointing, "true or false")
        check(self.precision in PRECISIONS, "schedule.precision", self.precision, f"one of {PRECISIONS}")
        check(self.early_stopping_patience is None or (isinstance(self.early_stopping_patience, int)
              and self.early_stopping_patience >= 1), "schedule.early_stopping_patience",
              self.early_stopping_patience, "an integer ≥ 1 or null")
        check(isinstance(self.keep_best, bool), "schedule.keep_best", self.keep_best, "true or false")
        check(self.monitor in MONITORS, "schedule.monitor", self.monitor, f"one of {MONITORS}")
        check(isinstance(self.min_delta, (int, float)) and self.min_delta >= 0, "schedule.min_delta", self.min_delta,
              "a number ≥ 0")


@dataclass(frozen=True)
class Recipe:
    task: MethodSpec
    adapter: MethodSpec = MethodSpec("full")
    optimizer: MethodSpec = MethodSpec("adamw")
    data: MethodSpec | None = None
    compress: tuple[MethodSpec, ...] = ()
    schedule: Schedule = field(default_factory=Schedule)
    seed: int = 0
    name: str = ""  # a label for tables; not part of the id

    def __post_init__(self) -> None:
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer ≥ 0")

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], validate: bool = True) -> "Recipe":
        if not isinstance(d, Mapping):
            raise ConfigError(f"a recipe must be a mapping, but got {type(d).__name__}. Fix: see README 'Recipes'.")
        check_keys(d, [f.name for f in fields(cls)], "recipe")
        if "task" not in d:
            raise ConfigError("recipe: 'task' is required. Fix: add e.g. 'task: digits-mlp' (see `leanfit list`).")
        sched = d.get("schedule") or {}
        if not isinstance(sched, Mapping):
            raise ConfigError(f"schedule must be a mapping, but got {sched!r}.")
        check_keys(sched, [f.name for f in fields(Schedule)], "schedule")
        comp = d.get("compress") or []
        if not isinstance(comp, list):
            comp = [comp]
        r = cls(
            task=MethodSpec.parse(d["task"], "task"),
            adapter=MethodSpec.parse(d.get("adapter", "full"), "adapter"),
            optimizer=MethodSpec.parse(d.get("optimizer", "adamw"), "optimizer"),
            data=MethodSpec.parse(d["data"], "data") if d.get("data") else None,
            compress=tuple(MethodSpec.parse(c, "compress[]") for c in comp),
            schedule=Schedule(**sched),
            seed=d.get("seed", 0),
            name=str(d.get("name", "")),
        )
        if validate:
            r.validate()
        return r

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        return cls.from_dict(load_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        s = {f.name: getattr(self.schedule, f.name) for f in fields(Schedule)}
        s = {k: v for k, v in s.items() if v != getattr(Schedule(), k)}  # only non-defaults: short, exact
        out: dict[str, Any] = {"task": self.task.to_dict() if self.task.params else self.task.name,
                               "adapter": self.adapter.to_dict(), "optimizer": self.optimizer.to_dict()}
        if self.data:
            out["data"] = self.data.to_dict()
        if self.compress:
            out["compress"] = [c.to_dict() for c in self.compress]
        out["schedule"] = s
        out["seed"] = self.seed
        if self.name:
            out["name"] = self.name
        return out

    @property
    def id(self) -> str:
        """Stable id: sha256 of the canonical JSON (name excluded), 12 hex chars."""
        d = self.to_dict()
        d.pop("name", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return self.name or f"{self.adapter.name}+{self.optimizer.name}" + (f"+{self.data.name}" if self.data else "")

    def replace(self, **changes: Any) -> "Recipe":
        d = self.to_dict()
        d.update(changes)
        return Recipe.from_dict(d)

    # ---- validation against the registry ------------------------------------------------------------------
    def validate(self) -> None:
        """Check every name and parameter now, before any data or model is loaded."""
        self.configs  # noqa: B018  (builds, validates and caches them)

    @functools.cached_property
    def configs(self) -> "RecipeConfigs":
        """The validated config object of every choice, built once and reused by ``build_run``."""
        from . import registry
        from .task import get_task_entry

        task_entry = get_task_entry(self.task.name)
        return RecipeConfigs(
            task=task_entry.make_config(self.task.kwargs),
            adapter=registry.get("adapters", self.adapter.name).make_config(self.adapter.kwargs),
            optimizer=registry.get("optim", self.optimizer.name).make_config(self.optimizer.kwargs),
            data=registry.get("data", self.data.name).make_config(self.data.kwargs) if self.data else None,
            compress=tuple(registry.get("compress", c.name).make_config(c.kwargs) for c in self.compress))


@dataclass(frozen=True)
class RecipeConfigs:
    """A recipe's choices as validated config dataclasses (one per axis; the task's generated from its builder)."""

    task: Any
    adapter: Any
    optimizer: Any
    data: Any
    compress: tuple[Any, ...]


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file as plain data (yaml.safe_load: no code, no object tags)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"file {str(p)!r} does not exist. Fix: check the path (cwd is {Path.cwd()}).")
    text = p.read_text()
    if p.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, but got {type(data).__name__}.")
    return data


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
