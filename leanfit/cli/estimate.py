"""`leanfit estimate RECIPE` (or `--space SPACE`): costs before running (workflows/estimate.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def estimate(recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML/JSON file."),
                 space: Optional[Path] = typer.Option(None, help="A search space: estimate every grid point."),
                 memory: Optional[float] = typer.Option(None, help="Memory limit in GiB (default: this machine's)."),
                 steps: int = typer.Option(3, help="Steps to meter and time."),
                 limit: int = typer.Option(24, help="At most this many grid points of a space.")) -> None:
        """Parameters, optimizer state, train memory, FLOPs and a wall-time forecast, before training."""
        from ..engine.errors import ConfigError
        from ..engine.recipe import Recipe
        from ..report.table import estimates_table
        from ..workflows.estimate import estimate as run_estimate

        if (recipe is None) == (space is None):
            raise ConfigError("give a recipe file or --space SPACE (one of them). Fix: leanfit estimate recipe.yaml")
        if recipe is not None:
            recipes = [Recipe.load(recipe)]
        else:
            from ..study.space import SearchSpace

            sp = SearchSpace.load(space)
            recipes = [sp.recipe(p) for p in sp.grid()[:limit]]
        rows = [run_estimate(r, steps, memory) for r in recipes]
        estimates_table(rows)
        for e in rows:
            for note in e.notes:
                typer.echo(f"note ({e.label}): {note}")
