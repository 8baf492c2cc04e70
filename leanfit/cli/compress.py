"""`leanfit compress SPEC`: train or load a model, compress it, and compare it with the original side by side.
Only typer is imported here; torch loads inside the command."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import ALLOW_CODE, check_writable, opt_in_to_code


def register(app: typer.Typer) -> None:
    @app.command()
    def compress(
        spec: Path = typer.Argument(..., help="compress.yaml: a recipe (task, adapter, optimizer, schedule) plus "
                                    "'steps' (compress methods in order) and optionally 'checkpoint', 'output'."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full report as JSON here."),
        output: Optional[Path] = typer.Option(None, help="Save the compressed weights (safetensors; int8 as int8)."),
        save: Optional[Path] = typer.Option(None, help="Save the compressed model as a model folder (new or empty), "
                                            "for leanfit predict / evaluate / export."),
        allow_code: bool = ALLOW_CODE,
    ) -> None:
        """Shrink a trained model (pruning, low-rank, quantization) and report accuracy, size and CPU latency."""
        import json

        from rich.console import Console
        from rich.table import Table

        from ..workflows.compress import run_compress
        from ..engine.recipe import load_mapping

        opt_in_to_code(allow_code)
        data = load_mapping(spec)
        if output:
            data["output"] = str(output)
        check_writable(json_out, "--json")
        check_writable(data.get("output"), "output")
        if save:
            data["save"] = str(save)
        if data.get("save"):
            from ..workflows.model_io import check_writable as check_folder

            check_folder(data["save"])
        con = Console()
        with con.status("training / compressing ..."):
            res = run_compress(data)
        t = Table(title=f"compress: {res['task']} — " + " → ".join(s.get("method", "?") for s in res["steps"]),
                  caption="accuracy on validation and test; ratio row: compressed ÷ original (accuracy: difference); "
                  "ms: median latency per batch, interleaved")
        for col in ("", "val acc", "test acc", "params", "non-zeros", "bytes", "ms"):
            t.add_column(col)
        for k in ("original", "compressed"):
            r = res[k]
            t.add_row(k, f"{r['accuracy']:.4f}", f"{r['test_accuracy']:.4f}", f"{r['params']:,}", f"{r['nonzeros']:,}",
                      f"{r['file_bytes']:,}", f"{res['latency_ms'][k]:.2f}")
        q = res["ratios"]
        t.add_row("ratio", f"{q['accuracy_delta']:+.4f}", f"{q['test_accuracy_delta']:+.4f}", f"{q['params']:.3f}",
                  f"{q['nonzeros']:.3f}", f"{q['file_bytes']:.3f}", f"{q['latency']:.3f}")
        con.print(t)
        if res.get("save"):
            con.print(f"saved the compressed model to {res['save']} (leanfit predict {res['save']} ...)")
        if json_out:
            json_out.write_text(json.dumps(res, indent=1, default=str))
            con.print(f"report written to {json_out}")
