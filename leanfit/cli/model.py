"""`leanfit predict | evaluate | export DIR`: use a model folder written by `leanfit run --save`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(model: Path = typer.Argument(..., help="A saved model folder (leanfit run --save)."),
                text: Optional[List[str]] = typer.Option(None, "--text", help="A text to predict (repeatable)."),
                file: Optional[Path] = typer.Option(None, help="A CSV/TSV/JSONL file to predict."),
                column: str = typer.Option("text", help="The file's text (or prompt) column."),
                out: Optional[Path] = typer.Option(None, help="Where to write the predictions (CSV)."),
                batch_size: int = typer.Option(32, help="Rows per batch.")) -> None:
        """Labels and probabilities (classifiers) or generations (language models)."""
        import json

        from ..engine.errors import ConfigError
        from ..workflows.predict import load, predict_file

        if not text and file is None:
            raise ConfigError("give --text \"...\" or --file rows.csv. Fix: leanfit predict DIR --text \"hello\"")
        p = load(model, batch_size)
        if text:
            for t, r in zip(text, p.predict(list(text))):
                typer.echo(json.dumps({"text": t, **r}))
        if file is not None:
            from rich.progress import Progress

            dest = out or file.with_name(file.stem + "-predictions.csv")
            with Progress(transient=True) as bar:
                job = bar.add_task("predicting", total=None)
                n = predict_file(p, file, column, dest, lambda k: bar.advance(job, k))
            typer.echo(f"wrote {n} predictions to {dest}")

    @app.command()
    def evaluate(model: Path = typer.Argument(..., help="A saved model folder."),
                 file: Path = typer.Option(..., help="A labelled CSV/TSV/JSONL file."),
                 text_column: str = typer.Option("text", help="Text (or prompt) column."),
                 label_column: str = typer.Option("label", help="Label (or completion) column.")) -> None:
        """Score a saved model on a labelled file: accuracy, macro-F1, per-class precision/recall, confusion."""
        from rich.console import Console
        from rich.table import Table

        from ..workflows.predict import evaluate_file, load

        ev = evaluate_file(load(model), file, text_column, label_column)
        con = Console()
        con.print(", ".join(f"{k} {v:.4f}" for k, v in ev.metrics.items()))
        if "per_class" in ev.details:
            t = Table(title="per class")
            for h in ("label", "precision", "recall", "f1", "support"):
                t.add_column(h)
            for name, d in ev.details["per_class"].items():
                t.add_row(name, f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}", str(d["support"]))
            con.print(t)
            con.print(f"confusion (rows: true, columns: predicted): {ev.details['confusion']}")
        if ev.flags:
            con.print(f"⚠ {', '.join(ev.flags)}", style="yellow")

    @app.command()
    def export(model: Path = typer.Argument(..., help="A saved model folder."),
               to: str = typer.Option("hf", "--to", help="Format: hf (Hugging Face / sentence-transformers)."),
               out: Path = typer.Argument(..., help="The folder to write.")) -> None:
        """A standard Hugging Face folder that loads without leanfit (causal LMs: AutoModelForCausalLM; text
        classifiers: SentenceTransformer, whose encode() returns the class logits)."""
        from ..engine.errors import check
        from ..workflows.export import export_hf

        check(to == "hf", "--to", to, "hf")
        typer.echo(f"wrote {export_hf(model, out)}")
