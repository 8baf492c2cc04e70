"""`leanfit run RECIPE` (train one recipe, print and store its costs) and `leanfit list` (tasks and methods)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine.store import DEFAULT_STORAGE


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_cmd(axis: Optional[str] = typer.Argument(None, help="tasks, adapters, compress, optim, data or merge")) -> None:
        """List tasks and methods with one-line descriptions."""
        from rich.console import Console
        from rich.table import Table

        from ..engine import registry
        from ..engine.task import list_tasks

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
                from ..engine.errors import UnknownNameError

                raise UnknownNameError("axis", ax, ("tasks",) + registry.AXES)
            t = Table(title=ax)
            t.add_column("name"), t.add_column("description"), t.add_column("paper")
            for e in registry.list_methods(ax):
                t.add_row(e.name, e.summary, e.paper)
            con.print(t)

    @app.command()
    def run(recipe: Path = typer.Argument(..., help="Recipe YAML/JSON file."),
            storage: str = typer.Option(DEFAULT_STORAGE, help="Optuna storage URL (sqlite, postgresql, journal:PATH)."),
            out: Optional[Path] = typer.Option(None, help="Also write the RunResult JSON here.")) -> None:
        """Run one recipe, print its costs, and store the RunResult."""
        from ..engine.recipe import Recipe

        r = Recipe.load(recipe)  # every name and parameter checked before the heavy imports below

        from ..engine.run import run_recipe
        from ..engine.store import save_run
        from ..report.progress import ProgressBar
        from ..report.table import print_results

        with ProgressBar(r.label) as bar:
            result = run_recipe(r, callbacks=[bar])
        num = save_run(result, storage)
        print_results([result], title=f"run {r.id} (trial {num} in {storage})")
        if out:
            out.write_text(result.to_json())
        if result.status == "failed":
            typer.secho(f"run failed: {result.error}", fg="red", err=True)
            raise typer.Exit(1)
