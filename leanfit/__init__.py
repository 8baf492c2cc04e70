"""leanfit: what is the cheapest way to get this model to this accuracy on this data?

The public API is re-exported here lazily, so ``import leanfit`` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recipe": "recipe", "Schedule": "recipe", "MethodSpec": "recipe",
    "Trainer": "train", "run_recipe": "train", "build_run": "train",
    "Callback": "callbacks", "TrainState": "callbacks",
    "RunResult": "result",
    "Task": "tasks", "build_task": "tasks", "list_tasks": "tasks", "register_task": "tasks",
    "register": "registry", "list_methods": "registry", "get_method": "registry",
    "open_storage": "store", "save_run": "store", "load_runs": "store",
    "StudyConfig": "study", "SearchSpace": "study", "run_study": "study",
    "pareto_front": "report.pareto",
    "LeanfitError": "errors", "ConfigError": "errors", "DataError": "errors", "UnknownNameError": "errors",
    "NonFiniteLossError": "errors",
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
