"""`leanfit demo`: the MiniLM demo (workflows/demo.py)."""
from __future__ import annotations

from pathlib import Path

import typer

from ..engine.store import DEFAULT_STORAGE
from ._common import check_writable


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(n_train: int = typer.Option(320, help="Training articles (stratified subset of BBC News)."),
             epochs: int = typer.Option(3, help="Epochs per recipe."),
             storage: str = typer.Option(DEFAULT_STORAGE, help="Where results are stored."),
             plot: Path = typer.Option(Path("leanfit-demo.png"), help="PNG of accuracy vs trainable params.")) -> None:
        """Fine-tune real MiniLM on BBC News three ways (head-only, LoRA r=8, full) and compare every cost."""
        from ..engine.store import runs_study
        from ..workflows.demo import run_demo

        check_writable(plot, "--plot")
        runs_study(storage, "leanfit-demo")  # the storage is opened and checked before three runs train
        run_demo(n_train=n_train, epochs=epochs, storage=storage, plot=plot)
