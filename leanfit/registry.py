"""One registry of methods by lower-case name, per axis (timm-style `register` / `list_methods`).

Method modules register themselves on import; importing an axis package (``leanfit.methods.<axis>``) imports all
its modules. The registry imports an axis lazily on first look-up so that ``import leanfit`` stays fast.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError, UnknownNameError

AXES = ("adapters", "compress", "optim", "data", "merge")


@dataclass(frozen=True)
class Entry:
    """A registered method: ``factory(config)`` builds the stateful object; ``config_cls`` validates params."""

    axis: str
    name: str
    factory: Callable[[Any], Any]
    config_cls: type
    summary: str
    paper: str = ""  # "Title (arXiv id)"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def make_config(self, params: Mapping[str, Any] | None = None) -> Any:
        return make_config(self.config_cls, params or {}, where=f"{self.axis}.{self.name}")

    def build(self, params: Mapping[str, Any] | None = None) -> Any:
        return self.factory(self.make_config(params))


_REGISTRY: dict[str, dict[str, Entry]] = {a: {} for a in AXES}
_LOADED: set[str] = set()


def register(axis: str, name: str, config: type, summary: str, paper: str = "", **meta: Any):
    """Class/function decorator: ``@register("adapters", "bitfit", BitFitConfig, "biases only", paper=...)``."""
    if axis not in _REGISTRY:
        raise UnknownNameError("axis", axis, AXES)
    if name != name.lower():
        raise ConfigError(f"method names are lower-case, but got {name!r}. Fix: register it as {name.lower()!r}.")

    def deco(factory: Callable[[Any], Any]):
        add(Entry(axis, name, factory, config, summary, paper, meta))
        return factory

    return deco


def add(entry: Entry) -> None:
    if entry.name in _REGISTRY[entry.axis]:
        raise ConfigError(f"{entry.axis} method {entry.name!r} is registered twice; names must be unique per axis.")
    _REGISTRY[entry.axis][entry.name] = entry


def _load(axis: str) -> None:
    if axis not in _LOADED:
        _LOADED.add(axis)
        importlib.import_module(f"leanfit.methods.{axis}")


def get(axis: str, name: str) -> Entry:
    if axis not in _REGISTRY:
        raise UnknownNameError("axis", axis, AXES)
    _load(axis)
    try:
        return _REGISTRY[axis][name]
    except KeyError:
        raise UnknownNameError(f"{axis} method", name, _REGISTRY[axis]) from None


def list_methods(axis: str | None = None) -> list[Entry]:
    axes: Iterable[str] = AXES if axis is None else (axis,)
    out: list[Entry] = []
    for a in axes:
        _load(a)
        out.extend(sorted(_REGISTRY[a].values(), key=lambda e: e.name))
    return out


def make_config(config_cls: type, params: Mapping[str, Any], where: str) -> Any:
    """Build a config dataclass from a mapping; unknown keys get an error listing the valid ones."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls} is not a dataclass")
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))}. "
            f"Valid parameters: {', '.join(sorted(names)) or '(none)'}."
        )
    try:
        return config_cls(**params)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except TypeError as e:  # wrong types that __post_init__ did not catch
        raise ConfigError(f"{where}: {e}") from None
