"""leanfit's command line (typer). Heavy imports (torch, transformers, optuna) happen inside commands, so
``leanfit --help`` stays fast. LeanfitErrors print as one red line and exit 2; ``--debug`` shows tracebacks.

Every module of this package is a command group: it defines ``register(app)`` and imports only typer (and the
engine's light constants) at module level. They are discovered, not listed.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="leanfit: find the cheapest way to train a model to a target accuracy.")
_DEBUG = {"on": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _DEBUG["on"] = debug


def _load_command_modules() -> None:
    if _LOADED:
        return
    _LOADED.append(True)
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{mod}").register(app)


_LOADED: list[bool] = []


def main() -> None:
    _load_command_modules()
    from ..engine.errors import LeanfitError

    try:
        app(standalone_mode=False)
    except LeanfitError as e:
        if _DEBUG["on"]:
            raise
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise

