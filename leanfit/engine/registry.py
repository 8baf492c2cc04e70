"""One registry for everything a recipe names: tasks and the methods of the five axes, by lower-case name
(timm-style ``register`` / ``get`` / ``list_methods``).

Plug-ins register themselves with the ``@register`` decorator when their module is imported. Discovery is the
registry's one dynamic import: on the first look-up of an axis it imports every public module of that axis'
package (``PACKAGES``), so a new method is one new module — no list to edit. ``import leanfit`` stays fast
because nothing is imported before the first look-up.

What a method can do beyond its axis' contract (the abstract base classes in ``leanfit.methods.base``) is a
frozen, typed :class:`Capabilities` record, never free-form keywords.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError, UnknownNameError, check_keys

AXES = ("adapters", "compress", "optim", "data", "merge")  # the five method axes
KINDS = ("tasks", *AXES)  # everything the registry holds
PACKAGES = {"tasks": "leanfit.tasks", **{a: f"leanfit.methods.{a}" for a in AXES}}
MERGE_INPUTS = ("fisher", "inputs")  # what a merger may ask the merge workflow to supply besides the weights


@dataclass(frozen=True)
class Capabilities:
    """What the harness and the contract tests need to know about a method, typed and validated.

    Any axis:  ``via`` the library it wraps ("" = ours); ``unsupported`` why the Trainer cannot drive it ("" = it
    can); ``fallback`` a library catch-all entry that a method of ours with the same name replaces.
    data:      ``fraction`` the config has a ``fraction`` of rows kept; ``unique_rows`` an epoch never repeats a row.
    compress:  ``during_training`` acts through Trainer hooks while training (else once, after training);
               ``changes_shapes`` removes units or layers; ``needs_blocks`` needs a stack of transformer blocks;
               ``reports`` what its report counts ("sparsity", "rank", "bits", "layers", "shapes").
    merge:     ``needs_base`` needs the shared pre-trained weights; ``inputs`` extra inputs the merge workflow
               supplies (``MERGE_INPUTS``); ``aligns`` permutes units to align the models (Re-Basin).
    """

    via: str = ""
    unsupported: str = ""
    fallback: bool = False
    fraction: bool = False
    unique_rows: bool = True
    during_training: bool = False
    changes_shapes: bool = False
    needs_blocks: bool = False
    reports: str = ""
    needs_base: bool = False
    inputs: tuple[str, ...] = ()
    aligns: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.inputs) - set(MERGE_INPUTS))
        if unknown:
            raise ConfigError(f"capabilities.inputs must be among {MERGE_INPUTS}, but got {unknown}.")


@dataclass(frozen=True)
class Entry:
    """A registered task or method: ``factory(config)`` builds it; ``config_cls`` validates its parameters."""

    axis: str
    name: str
    factory: Callable[[Any], Any]
    config_cls: type
    summary: str
    paper: str = ""  # "Title (arXiv id)"
    capabilities: Capabilities = field(default_factory=Capabilities)

    def make_config(self, params: Mapping[str, Any] | None = None) -> Any:
        return make_config(self.config_cls, params or {}, where=f"{self.axis}.{self.name}")

    def build(self, params: Any = None) -> Any:
        """The method (or task) from a validated config object or a mapping of parameters."""
        config = params if isinstance(params, self.config_cls) else self.make_config(params)
        return self.factory(config)


_REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
_LOADED: set[str] = set()
_DEFERRED: dict[str, list[Callable[[], None]]] = {k: [] for k in KINDS}


def _check_kind(axis: str) -> None:
    if axis not in _REGISTRY:
        raise UnknownNameError("axis", axis, KINDS)


def register(axis: str, name: str, config: type, summary: str, paper: str = "", **capabilities: Any):
    """Class/function decorator: ``@register("adapters", "bitfit", BitFitConfig, "biases only", paper=...)``.
    Keyword arguments are :class:`Capabilities` fields (an unknown one is an error)."""
    _check_kind(axis)
    if name != name.lower():
        raise ConfigError(f"names are lower-case, but got {name!r}. Fix: register it as {name.lower()!r}.")
    caps = Capabilities(**capabilities)

    def deco(factory: Callable[[Any], Any]):
        add(Entry(axis, name, factory, config, summary, paper, caps))
        return factory

    return deco


def add(entry: Entry) -> None:
    """Register an entry. A name is registered once per axis; a ``fallback`` entry (a library's catch-all) never
    replaces one that exists, and is replaced by a method of ours with the same name."""
    table = _REGISTRY[entry.axis]
    have = table.get(entry.name)
    if have is not None and not have.capabilities.fallback:
        if entry.capabilities.fallback:
            return
        raise ConfigError(f"{entry.axis} {entry.name!r} is registered twice; names must be unique per axis.")
    table[entry.name] = entry


def defer(axis: str, loader: Callable[[], None]) -> None:
    """Register a library's catch-all entries only when needed: ``loader()`` runs the first time a look-up misses
    leanfit's own entries of the axis, or the axis is listed. A recipe naming one of ours (e.g. adamw) never pays
    for importing the library (pytorch-optimizer takes seconds to import)."""
    _check_kind(axis)
    _DEFERRED[axis].append(loader)


def _run_deferred(axis: str) -> None:
    while _DEFERRED[axis]:
        _DEFERRED[axis].pop(0)()


def is_registered(axis: str, name: str) -> bool:
    _check_kind(axis)
    return name in _REGISTRY[axis]


def _load(axis: str) -> None:
    """Plug-in discovery: import every public module of the axis' package (once)."""
    if axis in _LOADED:
        return
    pkg = importlib.import_module(PACKAGES[axis])
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")  # a broken plug-in raises here, every time
    _LOADED.add(axis)


def get(axis: str, name: str) -> Entry:
    _check_kind(axis)
    _load(axis)
    if name not in _REGISTRY[axis]:
        _run_deferred(axis)
    try:
        return _REGISTRY[axis][name]
    except KeyError:
        kind = "task" if axis == "tasks" else f"{axis} method"
        raise UnknownNameError(kind, name, _REGISTRY[axis]) from None


def list_methods(axis: str | None = None) -> list[Entry]:
    """Entries of one axis (or of the five method axes), sorted by name."""
    axes: Iterable[str] = AXES if axis is None else (axis,)
    out: list[Entry] = []
    for a in axes:
        _check_kind(a)
        _load(a)
        _run_deferred(a)
        out.extend(sorted(_REGISTRY[a].values(), key=lambda e: e.name))
    return out


def make_config(config_cls: type, params: Mapping[str, Any], where: str) -> Any:
    """Build a config dataclass from a mapping; unknown keys get an error listing the valid ones."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls} is not a dataclass")
    check_keys(params, [f.name for f in dataclasses.fields(config_cls) if f.init], where, what="parameter")
    try:
        return config_cls(**params)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except TypeError as e:  # wrong types that __post_init__ did not catch
        raise ConfigError(f"{where}: {e}") from None


class _Required:
    """Marker default of a generated config field that the callable requires."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED = _Required()


def signature_config(fn: Callable[..., Any], name: str, skip: Iterable[str] = ("self",),
                     post_init: Callable[[Any], None] | None = None, defaults: Mapping[str, Any] | None = None,
                     extra: Iterable[tuple[str, Any]] = (), missing: Any = REQUIRED) -> type:
    """A frozen config dataclass generated from a callable's keyword parameters and their defaults, so that a
    recipe is validated against exactly what the callable accepts. Parameters whose defaults are not plain data
    (callables, objects) are left out: they are not recipe data. ``defaults`` override defaults, ``extra`` adds
    fields, and a parameter without a default gets ``missing`` (``REQUIRED``: an error unless given)."""
    fields_: list[tuple[str, Any, Any]] = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = (defaults or {}).get(p.name, missing if p.default is inspect.Parameter.empty else p.default)
        if isinstance(default, (list, dict, set)):
            fields_.append((p.name, Any, field(default_factory=lambda d=default: type(d)(d))))
        elif isinstance(default, (int, float, str, bool, tuple, type(None), _Required)):
            fields_.append((p.name, Any, field(default=default)))
    fields_ += [(k, Any, field(default=v)) for k, v in extra]

    def __post_init__(self: Any) -> None:
        missing_ = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is REQUIRED]
        if missing_:
            raise ConfigError(f"{', '.join(map(repr, missing_))} must be given (required), but got nothing. "
                              f"Fix: add {missing_[0]}: ... to the configuration.")
        if post_init is not None:
            post_init(self)

    cls = dataclasses.make_dataclass(name, fields_, frozen=True, namespace={"__post_init__": __post_init__})
    cls.__module__ = getattr(fn, "__module__", __name__)
    return cls


def config_kwargs(config: Any) -> dict[str, Any]:
    """The parameters a config holds, as keyword arguments (required fields that were not given are left out)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) is not REQUIRED}
