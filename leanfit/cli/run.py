"""`leanfit run RECIPE` (train one recipe, print and store its costs) and `leanfit list` (tasks and methods)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine.store import DEFAULT_STORAGE
from ._common import ALLOW_CODE, check_writable, opt_in_to_code


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
            out: Optional[Path] = typer.Option(None, help="Also write the RunResult JSON here."),
            save: Optional[Path] = typer.Option(None, help="Write the trained model to this folder (new or empty): "
                                                "use it with leanfit predict / evaluate / export or leanfit.load."),
            separate_adapter: bool = typer.Option(False, help="With --save: keep the adapter in its own file "
                                                  "instead of merging it into the weights."),
            allow_code: bool = ALLOW_CODE) -> None:
        """Run one recipe, print its costs, and store the RunResult.

        Everything is checked before training (the recipe, --out, the storage); the result file is written before
        the database, so a storage failure never loses a finished run. Exit 1 if the run failed, 130 on Ctrl-C
        (the partial run is stored as failed, error "interrupted")."""
        from ..engine.errors import RunInterrupted
        from ..engine.recipe import Recipe
        from ..engine.store import open_storage, runs_study

        opt_in_to_code(allow_code)
        r = Recipe.load(recipe)  # every name and value, task keys included, before any data or model
        check_writable(out, "--out")
        if save is not None:
            from ..workflows.model_io import check_writable as check_folder

            check_folder(save)  # before training: a bad --save must not cost a run
        st = open_storage(storage)  # opened and checked now, not after training
        runs_study(st)
        from ..engine.run import train_recipe
        from ..report.progress import ProgressBar
        from ..report.table import print_results

        interrupted = False
        try:
            with ProgressBar(r.label) as bar:
                result, built = train_recipe(r, callbacks=[bar])
        except RunInterrupted as e:
            result, interrupted, built = e.result, True, None
        num = _keep(result, out, st, storage)
        print_results([result], title=f"run {r.id} (trial {num} in {storage})")
        if save is not None:
            _save_model(save, result, built, separate_adapter)
        if interrupted:
            typer.secho(f"interrupted: the partial run is stored as failed (trial {num}, error 'interrupted').",
                        fg="yellow", err=True)
            raise typer.Exit(130)
        if result.status == "failed":
            typer.secho(f"run failed: {result.error}", fg="red", err=True)
            raise typer.Exit(1)


def _keep(result, out: Optional[Path], st, storage: str) -> int:
    """Write --out first, then the database; if the database write fails, the result is in a file and the error
    says where."""
    from ..engine.errors import StorageError
    from ..engine.store import save_run

    if out:
        out.write_text(result.to_json())
    try:
        return save_run(result, st)
    except Exception as e:  # noqa: BLE001 - whatever the database did, the finished run must not be lost
        path = out or _rescue_file(result)
        raise StorageError(f"the run finished but storing it in {storage} failed ({type(e).__name__}: {e}). "
                           f"The RunResult is safe in {path}. Fix: check the storage, then load the file with "
                           "leanfit.RunResult.from_json and leanfit.save_run.") from None


def _save_model(folder: Path, result, built, separate_adapter: bool) -> None:
    """The trained model of a finished run as a leanfit model folder; a failed or interrupted run saves nothing."""
    if built is None or result.status != "complete":
        typer.secho(f"--save: nothing written to {folder}, the run did not complete ({result.status}).",
                    fg="yellow", err=True)
        return
    from ..workflows.model_io import save

    save(folder, built.model, built.task, result, built.adapter, result.recipe, merge=not separate_adapter)
    typer.echo(f"saved the trained model to {folder} (leanfit predict {folder} --text ...)")


def _rescue_file(result) -> Path:
    import tempfile
    import time

    name = f"leanfit-run-{result.recipe_id}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            (folder / name).write_text(result.to_json())
            return folder / name
        except OSError:
            continue
    raise OSError(f"could not write {name} in the working directory or {tempfile.gettempdir()}")
