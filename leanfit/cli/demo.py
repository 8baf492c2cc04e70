"""`leanfit demo [minilm|lm]`: the MiniLM demo, or SmolLM2 fine-tuned as a language model (workflows/demo.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine.errors import ConfigError
from ..engine.store import DEFAULT_STORAGE
from ._common import check_writable

WHICH = ("minilm", "lm")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(which: str = typer.Argument("minilm", help="minilm (MiniLM classifier, ~2 min) or lm (SmolLM2-135M "
                                         "language model, ~5 min)."),
             n_train: int = typer.Option(320, help="minilm: training articles (stratified subset of BBC News)."),
             epochs: int = typer.Option(3, help="minilm: epochs per recipe."),
             steps: int = typer.Option(32, help="lm: optimizer steps per recipe."),
             storage: str = typer.Option(DEFAULT_STORAGE, help="Where results are stored."),
             plot: Optional[Path] = typer.Option(None, help="PNG of accuracy vs trainable params "
                                                 "(default leanfit-demo.png / leanfit-demo-lm.png).")) -> None:
        """Fine-tune real pretrained weights three ways and compare every cost: MiniLM on BBC News (head-only,
        LoRA r=8, full), or `demo lm`: SmolLM2-135M on BBC topics as generation (zero-shot, LoRA r=8, full)."""
        from ..engine.store import runs_study

        if which not in WHICH:
            raise ConfigError(f"demo must be one of {', '.join(WHICH)}, but got {which!r}. Fix: leanfit demo lm.")
        plot = plot or Path("leanfit-demo.png" if which == "minilm" else "leanfit-demo-lm.png")
        check_writable(plot, "--plot")
        study = "leanfit-demo" if which == "minilm" else "leanfit-demo-lm"
        runs_study(storage, study)  # the storage is opened and checked before any run trains
        if which == "lm":
            from ..workflows.demo import run_lm_demo

            run_lm_demo(storage=storage, plot=plot, study_name=study, steps=steps)
        else:
            from ..workflows.demo import run_demo

            run_demo(n_train=n_train, epochs=epochs, storage=storage, plot=plot)
