"""leanfit: what is the cheapest way to get this model to this accuracy on this data?

The public API is re-exported here lazily, so ``import leanfit`` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

from .engine import __version__

_EXPORTS = {
    "Recipe": "engine.recipe", "Schedule": "engine.recipe", "MethodSpec": "engine.recipe",
    "Trainer": "engine.trainer", "run_recipe": "engine.run", "build_run": "engine.run",
    "Callback": "engine.callbacks", "TrainState": "engine.callbacks",
    "RunResult": "engine.result",
    "Task": "engine.task", "build_task": "engine.task", "list_tasks": "engine.task", "register_task": "engine.task",
    "register": "engine.registry", "list_methods": "engine.registry", "get_method": "engine.registry",
    "open_storage": "engine.store", "save_run": "engine.store", "load_runs": "engine.store",
    "StudyConfig": "study", "SearchSpace": "study", "run_study": "study",
    "pareto_front": "report.pareto",
    "load": "workflows.predict", "save": "workflows.model_io", "estimate": "workflows.estimate",
    "LeanfitError": "engine.errors", "ConfigError": "engine.errors", "DataError": "engine.errors",
    "UnknownNameError": "engine.errors", "NonFiniteLossError": "engine.errors",
}
_ALIASES = {"get_method": "get"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(mod, _ALIASES.get(name, name))
    raise AttributeError(f"module 'leanfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS) + ["__version__"]
