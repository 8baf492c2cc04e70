"""Search spaces over recipes: a YAML file (data, never code) → Optuna define-by-run suggestions → a Recipe.

    task: digits-mlp                       # optional; `leanfit search --task` overrides
    schedule: {epochs: 2, batch_size: {choice: [32, 64]}}
    adapter:                               # one method per trial; each with its own (nested) parameters
      lora: {r: {int: [2, 16]}}
      head_only: {}
      full: {}
    optimizer:
      choices: [adamw, lion, adan]         # long form: choices + parameters shared by every choice
      params: {lr: {log: [1.0e-4, 1.0e-2]}}
    data:
      none: {}                             # "none": no data selector in this trial
      random: {fraction: {float: [0.2, 1.0]}}

A parameter is a constant (``alpha: 16``), a list (a categorical choice), or a mapping with one of
``{int: [lo, hi]}``, ``{float: [lo, hi]}``, ``{log: [lo, hi]}`` (log-uniform float), ``{choice: [...]}`` or
``{value: x}``; ranges take optional ``step``, ``log: true`` and ``grid: [...]`` (the values the grid sampler uses).

Optuna parameter names: ``adapter`` (the method), ``adapter.lora.r`` (a method's own parameter),
``optimizer.lr`` (a shared one), ``schedule.batch_size``. Every method name and every parameter range is
validated against the registry when the space is loaded, so a typo fails before any trial runs.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..engine.errors import ConfigError, check, check_keys

AXES = ("adapter", "optimizer", "data", "compress")  # recipe field → registry axis below
REGISTRY_AXIS = {"adapter": "adapters", "optimizer": "optim", "data": "data", "compress": "compress"}
NONE = "none"  # the "no method" choice for the optional axes (data, compress)
STUDY_KEYS = ("objectives", "budgets", "sampler", "stopper", "trials", "study")
TOP_KEYS = ("task", "schedule", "seed", *AXES, *STUDY_KEYS)
GRID_POINTS = 3  # default grid resolution of a continuous range


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a constant, an int/float range (optionally log-scaled), or a categorical choice."""

    kind: str  # "const" | "int" | "float" | "choice"
    value: Any = None  # const
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    grid: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, spec: Any, where: str) -> "Param":
        if isinstance(spec, list):
            return cls._choice(spec, where)
        if not isinstance(spec, Mapping):
            return cls("const", value=spec)
        kinds = [k for k in ("int", "float", "choice", "value") if k in spec]
        if not kinds and "log" in spec and not isinstance(spec["log"], bool):
            kinds = ["log"]  # {log: [lo, hi]}: a log-uniform float
        extra = sorted(set(spec) - {"int", "float", "log", "choice", "value", "step", "grid"})
        if len(kinds) != 1 or extra:
            raise ConfigError(
                f"{where} must be a constant, a list of choices, or a mapping with exactly one of int/float/log/"
                f"choice/value (plus optional step, log, grid), but got {spec!r}. "
                "Fix: e.g. {int: [2, 16]}, {log: [1.0e-4, 1.0e-2]} or {choice: [adamw, lion]}.")
        kind = kinds[0]
        if kind == "value":
            return cls("const", value=spec["value"])
        if kind == "choice":
            return cls._choice(spec["choice"], where)
        rng = spec[kind]
        check(isinstance(rng, list) and len(rng) == 2 and all(_is_num(x) for x in rng) and rng[0] < rng[1],
              where, rng, "a range [low, high] of two numbers with low < high")
        log = kind == "log" or bool(spec.get("log", False))
        if log:
            check(rng[0] > 0, where, rng, "a range with low > 0 on a log scale")
        if kind == "int":
            check(all(isinstance(x, int) for x in rng), where, rng, "a range of two integers for int")
        step = spec.get("step")
        check(step is None or (_is_num(step) and step > 0 and not log), f"{where}.step", step,
              "a number > 0 (and not combined with log)")
        grid = tuple(spec.get("grid", ()))
        for g in grid:
            check(_is_num(g) and rng[0] <= g <= rng[1], f"{where}.grid", g, f"a number inside {rng}")
        return cls("int" if kind == "int" else "float", low=rng[0], high=rng[1], log=log, step=step, grid=grid)

    @classmethod
    def _choice(cls, values: Any, where: str) -> "Param":
        check(isinstance(values, list) and len(values) >= 1, where, values, "a non-empty list of choices")
        for v in values:
            check(v is None or isinstance(v, (bool, int, float, str)), where, v,
                  "a list of plain values (numbers, strings, booleans, null)")
        return cls("choice", choices=tuple(values))

    @property
    def fixed(self) -> bool:
        return self.kind == "const" or (self.kind == "choice" and len(self.choices) == 1)

    def const(self) -> Any:
        return self.value if self.kind == "const" else self.choices[0]

    def suggest(self, trial: Any, name: str) -> Any:
        if self.fixed:
            return self.const()
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        if self.fixed:
            return [self.const()]
        if self.kind == "choice":
            return list(self.choices)
        if self.grid:
            return list(self.grid)
        if self.kind == "int" and not self.log:
            vals = list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
            if len(vals) <= 8:
                return vals
        lo, hi = float(self.low), float(self.high)
        pts = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (GRID_POINTS - 1)) if self.log
               else lo + i * (hi - lo) / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
        return sorted({int(round(p)) for p in pts}) if self.kind == "int" else pts

    def extremes(self) -> list[Any]:
        """The values that validation tries: both ends of a range, every choice."""
        if self.fixed:
            return [self.const()]
        if self.kind == "choice":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [float(self.low), float(self.high)]


@dataclass(frozen=True)
class Choice:
    """A method on an axis with its own parameters (plus the axis' shared parameters)."""

    name: str
    params: tuple[tuple[str, Param], ...] = ()


@dataclass(frozen=True)
class Axis:
    name: str  # adapter | optimizer | data | compress
    choices: tuple[Choice, ...]
    shared: tuple[tuple[str, Param], ...] = ()

    def choice(self, method: str) -> Choice:
        return next(c for c in self.choices if c.name == method)

    def named_params(self, method: str) -> list[tuple[str, str, Param]]:
        """(optuna name, method kwarg, Param) for a method: its own parameters, then the shared ones."""
        own = [(f"{self.name}.{method}.{k}", k, p) for k, p in self.choice(method).params]
        own_keys = {k for _, k, _ in own}
        return own + [(f"{self.name}.{k}", k, p) for k, p in self.shared if k not in own_keys]


@dataclass(frozen=True)
class SearchSpace:
    axes: tuple[Axis, ...]
    schedule: tuple[tuple[str, Param], ...] = ()
    task: Any = None  # name or mapping; None = must be given by the caller
    seed: Param = Param("const", value=0)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)  # the file, for the store

    # ---- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], validate: bool = True) -> "SearchSpace":
        if not isinstance(d, Mapping):
            raise ConfigError(f"a search space must be a mapping, but got {type(d).__name__}. Fix: see docs/study.md.")
        check_keys(d, TOP_KEYS, "search space")
        axes = tuple(_parse_axis(a, d[a]) for a in AXES if d.get(a) is not None)
        if not any(a.name == "adapter" for a in axes):
            axes = (Axis("adapter", (Choice("full"),)),) + axes
        if not any(a.name == "optimizer" for a in axes):
            axes = axes + (Axis("optimizer", (Choice("adamw"),)),)
        sched = d.get("schedule") or {}
        check(isinstance(sched, Mapping), "schedule", sched, "a mapping of schedule fields")
        space = cls(axes=axes, schedule=tuple((k, Param.parse(v, f"schedule.{k}")) for k, v in sched.items()),
                    task=d.get("task"), seed=Param.parse(d.get("seed", 0), "seed"), raw=dict(d))
        if validate:
            space.validate()
        return space

    @classmethod
    def load(cls, path: str | Path) -> "SearchSpace":
        from ..engine.recipe import load_mapping

        return cls.from_dict(load_mapping(path))

    def validate(self) -> None:
        """Every method exists in the registry (unknown names list close matches) and every parameter's extreme
        values pass the method's config dataclass; the schedule's extremes pass ``Schedule``."""
        from ..engine import registry
        from ..engine.recipe import Schedule

        for ax in self.axes:
            for c in ax.choices:
                if c.name == NONE:
                    continue
                entry = registry.get(REGISTRY_AXIS[ax.name], c.name)
                named = ax.named_params(c.name)
                base = {k: p.extremes()[0] for _, k, p in named}
                entry.make_config(base)
                for _, k, p in named:
                    for v in p.extremes()[1:]:
                        entry.make_config({**base, k: v})
        base = {k: p.extremes()[0] for k, p in self.schedule}
        check_keys(base, Schedule.__dataclass_fields__, "schedule")
        Schedule(**base)
        for k, p in self.schedule:
            for v in p.extremes()[1:]:
                Schedule(**{**base, k: v})
        for v in self.seed.extremes():
            check(isinstance(v, int) and v >= 0, "seed", v, "an integer ≥ 0")

    # ---- define-by-run ------------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask the trial for one point; returns the flat {optuna name: value} dict (constants included)."""
        flat: dict[str, Any] = {}
        for ax in self.axes:
            names = [c.name for c in ax.choices]
            method = names[0] if len(names) == 1 else trial.suggest_categorical(ax.name, names)
            flat[ax.name] = method
            for oname, _, p in ax.named_params(method):
                flat[oname] = p.suggest(trial, oname)
        for k, p in self.schedule:
            flat[f"schedule.{k}"] = p.suggest(trial, f"schedule.{k}")
        flat["seed"] = self.seed.suggest(trial, "seed")
        return flat

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the space (ranges at their grid values), as flat dicts in a fixed order."""
        per_axis: list[list[dict[str, Any]]] = []
        for ax in self.axes:
            opts = []
            for c in ax.choices:
                named = ax.named_params(c.name)
                for vals in itertools.product(*(p.grid_values() for _, _, p in named)):
                    opts.append({ax.name: c.name, **{n: v for (n, _, _), v in zip(named, vals)}})
            per_axis.append(opts)
        per_axis.append([dict(zip([f"schedule.{k}" for k, _ in self.schedule], vals))
                         for vals in itertools.product(*(p.grid_values() for _, p in self.schedule))])
        per_axis.append([{"seed": s} for s in self.seed.grid_values()])
        return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*per_axis)]

    def recipe(self, flat: Mapping[str, Any], task: Any = None) -> "Any":
        """The Recipe of a flat point (from ``suggest`` or ``grid``)."""
        from ..engine.recipe import Recipe

        task = task or self.task
        if task is None:
            raise ConfigError("the search space names no task. Fix: add 'task: digits-mlp' to the space file or "
                              "pass --task.")
        d: dict[str, Any] = {"task": task, "schedule": {k: flat[f"schedule.{k}"] for k, _ in self.schedule},
                             "seed": flat.get("seed", 0)}
        for ax in self.axes:
            method = flat[ax.name]
            if method == NONE:
                continue
            spec = {"name": method, **{k: flat[n] for n, k, _ in ax.named_params(method)}}
            d[ax.name] = [spec] if ax.name == "compress" else spec
        return Recipe.from_dict(d)


def _parse_axis(name: str, spec: Any) -> Axis:
    where = name
    shared: dict[str, Any] = {}
    if isinstance(spec, str):
        spec = {spec: {}}
    elif isinstance(spec, list):
        spec = {"choices": spec}
    check(isinstance(spec, Mapping) and len(spec) > 0, where, spec,
          "a method name, a list of names, or a mapping {method: {param: spec}}",
          "Fix: e.g. adapter: {lora: {r: {int: [2, 16]}}, full: {}}")
    if "choices" in spec:
        extra = sorted(set(spec) - {"choices", "params"})
        check(not extra, where, spec, "a mapping with only 'choices' and 'params' in the long form")
        choices = spec["choices"]
        shared = spec.get("params") or {}
        if isinstance(choices, list):
            check(all(isinstance(c, str) for c in choices), f"{where}.choices", choices, "a list of method names",
                  f"Fix: e.g. {where}: [adamw, lion].")
            choices = {c: {} for c in choices}
    else:
        choices = spec
    check(isinstance(choices, Mapping) and choices, f"{where}.choices", choices, "a non-empty list or mapping")
    check(isinstance(shared, Mapping), f"{where}.params", shared, "a mapping of shared parameters")
    if name in ("adapter", "optimizer") and NONE in choices:
        raise ConfigError(f"{where}: 'none' is only allowed on the optional axes data and compress, but got it on "
                          f"{name}. Fix: use 'full' (adapter) or a real optimizer.")
    out = []
    for method, params in choices.items():
        check(isinstance(method, str), f"{where}", method, "method names as strings")
        params = params or {}
        check(isinstance(params, Mapping), f"{where}.{method}", params, "a mapping of parameters (or {})")
        out.append(Choice(method.lower(), tuple((k, Param.parse(v, f"{where}.{method}.{k}"))
                                                for k, v in params.items())))
    return Axis(name, tuple(out), tuple((k, Param.parse(v, f"{where}.params.{k}")) for k, v in shared.items()))


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
