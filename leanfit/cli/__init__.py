"""leanfit's command line (typer). Heavy imports (torch, transformers, optuna) happen inside commands, so
``leanfit --help`` stays fast.

Exit codes (docs/errors.md): 0 success; 1 a failed run (NaN loss) or an internal error; 2 bad input (a
LeanfitError or a usage error), printed as one ``error:`` line; 130 Ctrl-C. No traceback unless ``--debug``.

Every module of this package is a command group: it defines ``register(app)`` and imports only typer (and the
engine's light constants) at module level. They are discovered, not listed.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from typing import Any, Callable, Sequence

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="leanfit: find the cheapest way to train a model to a target accuracy.")
_DEBUG = {"on": False}
OK, FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _DEBUG["on"] = debug


def _load_command_modules() -> None:
    if _LOADED:
        return
    _LOADED.append(True)
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{mod}").register(app)
    for command in app.registered_commands:
        command.callback = _interruptible(command.callback)


_LOADED: list[bool] = []


def main(argv: Sequence[str] | None = None) -> None:
    """The ``leanfit`` entry point: run the command and exit with its truthful code."""
    code = run_cli(argv)
    _forget_handled_interrupt()
    sys.exit(code)


def _forget_handled_interrupt() -> None:
    """CPython remembers a KeyboardInterrupt raised inside code it ran from a string (Cython module init, e.g. while
    sklearn is imported) even after we handled it, and then kills the process with SIGINT at exit instead of
    exiting with our code (measured: 2 of 8 Ctrl-C'd searches). Running a string through the same C path
    (``PyRun_SimpleString``) clears that flag, so Ctrl-C always exits with 130."""
    if sys.implementation.name == "cpython":
        import ctypes

        ctypes.pythonapi.PyRun_SimpleString(b"pass")


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code (what ``main`` exits with; tests call it in-process)."""
    from ..engine.errors import LeanfitError, NonFiniteLossError

    _load_command_modules()
    _DEBUG["on"] = False
    _show_leanfit_warnings()
    exits, aborts, usage = _cli_exceptions()
    try:
        code = app(args=list(argv) if argv is not None else None, prog_name="leanfit", standalone_mode=False)
    except (KeyboardInterrupt, *aborts):
        typer.secho("interrupted (Ctrl-C).", fg="yellow", err=True)
        return INTERRUPTED
    except NonFiniteLossError as e:  # a run that trained and diverged: a failed run, not bad input
        return _error(e, FAILED)
    except LeanfitError as e:
        return _error(e, BAD_INPUT)
    except exits as e:
        return e.exit_code
    except usage as e:  # usage errors: an unknown option, a missing argument (exit 2)
        e.show()
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a bug: one line and a hint, not a traceback
        if _DEBUG["on"]:
            raise
        typer.secho(f"error: internal error ({type(e).__name__}: {e}). This is a bug in leanfit; rerun with --debug "
                    "for the traceback and report it.", fg="red", err=True)
        return FAILED
    return code if isinstance(code, int) else OK


def _cli_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage-error) classes: typer ≥ 0.22 has its own (a vendored click), older typer raises
    click's."""
    exits, aborts, usage = [typer.Exit], [typer.Abort], []
    try:
        from typer._click.exceptions import ClickException

        usage.append(ClickException)
    except ImportError:  # pragma: no cover - typer on click
        pass
    try:
        import click

        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(exits), tuple(aborts), tuple(usage)


def _interruptible(command: Callable[..., Any]) -> Callable[..., Any]:
    """Ctrl-C in any command: one line and exit 130 (typer itself would exit 130 silently)."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.secho("interrupted (Ctrl-C).", fg="yellow", err=True)
            raise typer.Exit(INTERRUPTED) from None

    return wrapper


def _error(e: Exception, code: int) -> int:
    if _DEBUG["on"]:
        raise e
    typer.secho(f"error: {e}", fg="red", err=True)
    return code


def _show_leanfit_warnings() -> None:
    """Print LeanfitWarnings as one ``warning:`` line (other libraries' warnings keep Python's format)."""
    import warnings

    from ..engine.errors import LeanfitWarning

    original = warnings.showwarning
    if getattr(original, "_leanfit", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, LeanfitWarning):
            typer.secho(f"warning: {message}", fg="yellow", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    show._leanfit = True  # type: ignore[attr-defined]
    warnings.showwarning = show
