"""`leanfit lr-find RECIPE`: the LR range test (Smith 2018) → suggested learning rate + PNG plot."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import ALLOW_CODE, check_writable, opt_in_to_code


def register(app: typer.Typer) -> None:
    @app.command("lr-find")
    def lr_find(recipe: Path = typer.Argument(..., help="Recipe YAML/JSON (task, adapter, optimizer; its lr is ignored)."),
                lr_min: float = typer.Option(1e-6, help="Smallest learning rate of the ramp."),
                lr_max: float = typer.Option(1.0, help="Largest learning rate of the ramp."),
                steps: int = typer.Option(100, help="Steps of the exponential ramp."),
                plot: Path = typer.Option(Path("lr-find.png"), help="Where to save the loss-vs-LR plot."),
                out: Optional[Path] = typer.Option(None, help="Also write the curve as JSON here."),
                allow_code: bool = ALLOW_CODE) -> None:
        """Suggest a learning rate with an LR range test (loss vs exponentially growing LR)."""
        import json

        from ..workflows.lr_find import lr_range_test
        from ..workflows.lr_find import plot as save_plot
        from ..engine.recipe import Recipe

        opt_in_to_code(allow_code)
        r = Recipe.load(recipe)
        check_writable(plot, "--plot")
        check_writable(out, "--out")
        res = lr_range_test(r, lr_min=lr_min, lr_max=lr_max, steps=steps)
        save_plot(res, plot, title=f"LR range test: {r.task.name} / {r.optimizer.name}")
        stop = f"; loss diverged at lr={res.diverged_at:.3g}" if res.diverged_at else ""
        typer.echo(f"suggested lr: {res.suggested_lr:.3g} (steepest descent; min loss at lr={res.min_loss_lr:.3g}"
                   f"{stop}). Plot: {plot}")
        if out:
            out.write_text(json.dumps(res.to_dict(), indent=1))
