"""Task registry: built-in tasks by name, user text tasks from files, or ``module:function`` returning a Task."""
from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, UnknownNameError
from .base import Task, TensorDict, default_forward, stratified_split


@dataclass(frozen=True)
class TaskEntry:
    name: str
    builder: Callable[..., Task]
    summary: str


_TASKS: dict[str, TaskEntry] = {}
_BUILTIN_LOADED = [False]


def register_task(name: str, summary: str):
    def deco(fn: Callable[..., Task]):
        if name in _TASKS:
            raise ConfigError(f"task {name!r} is registered twice")
        _TASKS[name] = TaskEntry(name, fn, summary)
        return fn

    return deco


def _load_builtin() -> None:
    if not _BUILTIN_LOADED[0]:
        _BUILTIN_LOADED[0] = True
        from . import tabular, text  # noqa: F401  (register on import)


def list_tasks() -> list[TaskEntry]:
    _load_builtin()
    return sorted(_TASKS.values(), key=lambda e: e.name)


def get_task_entry(name: str) -> TaskEntry:
    _load_builtin()
    if ":" in name and name not in _TASKS:  # module:function returning a Task
        mod, _, fn = name.partition(":")
        try:
            f = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"task {name!r}: cannot import {fn!r} from module {mod!r} ({e}). "
                              f"Fix: make sure the module is importable (on PYTHONPATH) and defines {fn}().") from None
        return TaskEntry(name, f, f"user task {name}")
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownNameError("task", name, list(_TASKS) + ["<module>:<function>"]) from None


def build_task(name: str, **params: Any) -> Task:
    """Build (and cache in-process) a task's data; ``task.build_model(seed)`` still returns a fresh model."""
    return _build_cached(name, json.dumps(params, sort_keys=True, default=str))


@functools.lru_cache(maxsize=8)
def _build_cached(name: str, params_json: str) -> Task:
    entry = get_task_entry(name)
    params = json.loads(params_json)
    try:
        task = entry.builder(**params)
    except TypeError as e:
        raise ConfigError(f"task {name!r}: bad parameters {params} ({e}).") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task {name!r} must return a leanfit Task, but returned {type(task).__name__}.")
    return task


__all__ = ["Task", "TensorDict", "build_task", "default_forward", "get_task_entry", "list_tasks",
           "register_task", "stratified_split"]
