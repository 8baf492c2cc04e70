"""RunResult: recipe + metrics + costs + learning curve + environment, with one fixed JSON schema."""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: validation metrics + test_metrics, diagnostics and flags
STATUSES = ("complete", "failed", "pruned")
# Costs every run reports (all ↓ better); "accuracy" is the metric (↑ better).
COST_KEYS = ("trainable_params", "total_params", "optimizer_state_bytes", "activation_bytes", "train_memory_bytes",
             "peak_rss_bytes", "train_flops", "optimizer_flops", "cache_flops", "samples_seen", "tokens_seen", "padded_tokens_seen",
             "steps", "wall_time_s")


@dataclass
class RunResult:
    recipe: dict[str, Any]
    recipe_id: str
    task: str
    status: str = "complete"
    metrics: dict[str, float] = field(default_factory=dict)  # validation: accuracy, eval_loss, macro_f1 (final eval)
    test_metrics: dict[str, float] = field(default_factory=dict)  # test, scored once after a run completes
    costs: dict[str, float] = field(default_factory=dict)  # COST_KEYS
    curve: list[dict[str, float]] = field(default_factory=list)  # step, epoch, samples, flops, wall_time_s, accuracy
    diagnostics: dict[str, Any] = field(default_factory=dict)  # {"validation"|"test": per-class, confusion, baseline}
    flags: list[str] = field(default_factory=list)  # e.g. "collapsed", "at_baseline" (on validation or test)
    env: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # what methods report (sparsity, ranks, selector cost, ...)
    schema: int = SCHEMA_VERSION

    @property
    def accuracy(self) -> float:
        """Validation accuracy (what searches choose on)."""
        return float(self.metrics.get("accuracy", float("nan")))

    @property
    def test_accuracy(self) -> float:
        return float(self.test_metrics.get("accuracy", float("nan")))

    def value(self, name: str) -> float:
        """A metric (validation), a ``test_<metric>``, a cost, or ``trainable_fraction``; NaN when not measured."""
        if name == "trainable_fraction":
            total = self.costs.get("total_params") or 0
            return float(self.costs.get("trainable_params", 0)) / total if total else float("nan")
        if name.startswith("test_") and name[5:] in self.test_metrics:
            return float(self.test_metrics[name[5:]])
        for d in (self.metrics, self.costs):
            if name in d:
                return float(d[name])
        return float("nan")

    @property
    def label(self) -> str:
        return self.recipe.get("name") or "+".join(
            str(self.recipe[k]["name"] if isinstance(self.recipe.get(k), dict) else self.recipe.get(k))
            for k in ("adapter", "optimizer", "data") if self.recipe.get(k))

    def describe(self) -> str:
        """The recipe's hyperparameters in one line, e.g. ``lora(r=4 alpha=8) · adamw(lr=0.003) · epochs=2``."""
        parts = []
        for axis in ("adapter", "optimizer", "data"):
            spec = self.recipe.get(axis)
            if isinstance(spec, dict):
                kv = " ".join(f"{k}={_short(v)}" for k, v in spec.items() if k != "name")
                parts.append(f"{spec['name']}({kv})" if kv else spec["name"])
        parts += [f"{c['name']}" for c in self.recipe.get("compress") or [] if isinstance(c, dict)]
        parts += [f"{k}={_short(v)}" for k, v in (self.recipe.get("schedule") or {}).items()]
        if self.recipe.get("seed"):
            parts.append(f"seed={self.recipe['seed']}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunResult":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_json(cls, s: str) -> "RunResult":
        return cls.from_dict(json.loads(s))


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _json_default(o: Any) -> Any:
    try:
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def environment() -> dict[str, Any]:
    import torch

    from . import __version__  # the package version lives in the engine (leanfit re-exports it)

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=2,
                             cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {"leanfit": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
            "device": "cpu", "git_rev": rev}
