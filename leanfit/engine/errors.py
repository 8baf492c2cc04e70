"""Errors a user can act on: each names the rule, shows the value and says the fix (STYLE.md rule 9)."""
from __future__ import annotations

import difflib
from typing import Iterable


class LeanfitError(Exception):
    """Base class: the CLI prints these without a traceback (unless --debug)."""


class UnknownNameError(LeanfitError, KeyError):
    """An unknown method/task name; the message lists close matches and all valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5) if isinstance(name, str) else []
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        msg = f"unknown {kind} {name!r}.{hint} Valid {kind} names: {', '.join(valid)}."
        super().__init__(msg)
        self.name, self.valid, self.close = name, valid, close

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(LeanfitError, ValueError):
    """A bad configuration value: names the field, the value and the valid range."""


class DataError(LeanfitError, ValueError):
    """Bad or missing data (e.g. a column that is not in the file)."""


class NonFiniteLossError(LeanfitError, RuntimeError):
    """Training produced a NaN/inf loss; the run is stored as failed."""


class MissingExtraError(LeanfitError, ImportError):
    """An optional dependency is missing; the message gives the pip command."""


def check(cond: bool, field: str, value: object, rule: str, fix: str = "") -> None:
    """Raise ConfigError('<field> must be <rule>, but got <value>. <fix>') unless cond holds."""
    if not cond:
        msg = f"{field} must be {rule}, but got {value!r}."
        raise ConfigError(msg + (f" {fix}" if fix else ""))


def require(module: str, extra: str | None = None, package: str | None = None):
    """Import an optional dependency lazily; fail with the pip command that installs it (STYLE rule 10)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - exercised via tests with a fake module name
        how = f'pip install "leanfit[{extra}]"' if extra else f"pip install {package or module}"
        raise MissingExtraError(f"{module} is required for this feature but is not installed. Fix: {how}") from e


def check_keys(given: Iterable[str], valid: Iterable[str], where: str, what: str = "key") -> None:
    """The one unknown-key check: ``<where>: unknown <what>(s) 'x'. Valid <what>s: a, b.``"""
    valid = sorted(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        close = {u: difflib.get_close_matches(u, valid, n=1, cutoff=0.6) for u in unknown}
        hint = "".join(f" Did you mean {c[0]!r} for {u!r}?" for u, c in close.items() if c)
        raise ConfigError(f"{where}: unknown {what}(s) {', '.join(map(repr, unknown))}.{hint} "
                          f"Valid {what}s: {', '.join(valid) or '(none)'}.")


def check_fraction(field: str, value: object, low: str = "(", high: str = "]", meaning: str = "",
                   fix: str = "") -> None:
    """The one fraction check: ``value`` a number in the interval ``low``0, 1``high`` (``(`` / ``[`` open or closed
    at 0, ``]`` / ``)`` closed or open at 1)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > 0 if low == "(" else value >= 0) and (value <= 1 if high == "]" else value < 1)
    check(ok, field, value, f"a number in {low}0, 1{high}" + (f" ({meaning})" if meaning else ""), fix)


class StorageError(LeanfitError):
    """A storage URL that cannot be opened (bad URL, missing directory or driver, corrupt file), found before
    anything trains."""


class LeanfitWarning(UserWarning):
    """Something leanfit repaired or will ignore; the CLI prints these as one ``warning:`` line."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. ``result`` is the partial run (status "failed", error "interrupted") so the caller
    can store it; it is a KeyboardInterrupt, so code that does not know it still stops."""

    def __init__(self, result: object):
        super().__init__("interrupted")
        self.result = result


ALLOW_CODE_ENV = "LEANFIT_ALLOW_CODE"


def check_code_allowed(what: str) -> None:
    """Refuse to import code named in a recipe, space or spec unless the user opted in (``--allow-code`` on the
    command line, which sets ``LEANFIT_ALLOW_CODE=1`` for this process and its workers)."""
    import os

    if os.environ.get(ALLOW_CODE_ENV) != "1":
        raise ConfigError(
            f"{what} names Python code (module:function), and leanfit does not import code named in a recipe, "
            f"space or spec: they are data, and a shared file could run anything on your machine. "
            f"Fix: if you trust the file, rerun with --allow-code (or set {ALLOW_CODE_ENV}=1); from Python, "
            f"pass the Task object (run_recipe(recipe, task=...)) or register it with @register_task.")
