"""leanfit's command line (typer). Heavy imports (torch, transformers, optuna) happen inside commands, so
``leanfit --help`` stays fast. LeanfitErrors print as one red line and exit 2; ``--debug`` shows tracebacks.

Axis packages add their own commands: each module in ``COMMAND_MODULES`` defines ``register(app)``.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="leanfit: find the cheapest way to train a model to a target accuracy.")
_DEBUG = {"on": False}

# Modules that add commands with register(app); each must import only typer at module level.
COMMAND_MODULES: list[str] = ["leanfit.study_cli", "leanfit.compress_cli", "leanfit.optim_cli", "leanfit.merge_cli"]


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _DEBUG["on"] = debug


@app.command("list")
def list_cmd(axis: Optional[str] = typer.Argument(None, help="tasks, adapters, compress, optim, data or merge")) -> None:
    """List tasks and methods with one-line descriptions."""
    from rich.console import Console
    from rich.table import Table

    from . import registry
    from .tasks import list_tasks

    con = Console()
    if axis in (None, "tasks"):
        t = Table(title="tasks", show_lines=False)
        t.add_column("name"), t.add_column("description")
        for e in list_tasks():
            t.add_row(e.name, e.summary)
        con.print(t)
    for ax in registry.AXES if axis in (None, "tasks") else (axis,):
        if axis == "tasks":
            break
        if ax not in registry.AXES:
            from .errors import UnknownNameError

            raise UnknownNameError("axis", ax, ("tasks",) + registry.AXES)
        t = Table(title=ax)
        t.add_column("name"), t.add_column("description"), t.add_column("paper")
        for e in registry.list_methods(ax):
            t.add_row(e.name, e.summary, e.paper)
        con.print(t)


@app.command()
def run(recipe: Path = typer.Argument(..., help="Recipe YAML/JSON file."),
        storage: str = typer.Option("sqlite:///leanfit.db", help="Optuna storage URL (sqlite, postgresql, journal:PATH)."),
        out: Optional[Path] = typer.Option(None, help="Also write the RunResult JSON here.")) -> None:
    """Run one recipe, print its costs, and store the RunResult."""
    from .recipe import Recipe
    from .report.table import print_results
    from .store import save_run
    from .train import run_recipe
    from .progress import ProgressBar

    r = Recipe.load(recipe)
    with ProgressBar(r.label) as bar:
        result = run_recipe(r, callbacks=[bar])
    num = save_run(result, storage)
    print_results([result], title=f"run {r.id} (trial {num} in {storage})")
    if out:
        out.write_text(result.to_json())
    if result.status == "failed":
        typer.secho(f"run failed: {result.error}", fg="red", err=True)
        raise typer.Exit(1)


@app.command()
def demo(n_train: int = typer.Option(320, help="Training articles (stratified subset of BBC News)."),
         epochs: int = typer.Option(3, help="Epochs per recipe."),
         storage: str = typer.Option("sqlite:///leanfit.db", help="Where results are stored."),
         plot: Path = typer.Option(Path("leanfit-demo.png"), help="PNG of accuracy vs trainable params.")) -> None:
    """Fine-tune real MiniLM on BBC News three ways (head-only, LoRA r=8, full) and compare every cost."""
    from .demo import run_demo

    run_demo(n_train=n_train, epochs=epochs, storage=storage, plot=plot)


def _load_command_modules() -> None:
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(app)


def main() -> None:
    _load_command_modules()
    from .errors import LeanfitError

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


if __name__ == "__main__":
    main()
