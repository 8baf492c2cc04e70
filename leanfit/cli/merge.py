"""`leanfit merge merge.yaml` and `leanfit barrier A B --task T`. Only typer is imported here; torch loads inside."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import ALLOW_CODE, check_writable, opt_in_to_code


def register(app: typer.Typer) -> None:
    @app.command()
    def merge(
        spec: Path = typer.Argument(..., help="merge.yaml: method, params, base, task, models [{checkpoint, task}], "
                                    "per_task_heads, output, save. See docs/merge.md."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
        allow_code: bool = ALLOW_CODE,
    ) -> None:
        """Merge fine-tuned checkpoints (safetensors) and evaluate the merged model on every listed task."""
        import json

        from rich.console import Console
        from rich.table import Table

        from ..workflows.merge import run_merge
        from ..engine.recipe import load_mapping

        opt_in_to_code(allow_code)
        data = load_mapping(spec)
        check_writable(json_out, "--json")
        check_writable(data.get("output"), "output")
        if data.get("save"):
            from ..workflows.model_io import check_writable as check_folder

            check_folder(data["save"])
        con = Console()
        with con.status("merging / evaluating ..."):
            res = run_merge(data)
        t = Table(title=f"merge: {res['method']} {res['params'] or ''}",
                  caption="test accuracy (reported); validation is what to tune merge settings on")
        for col in ("checkpoint", "task", "val merged", "test individual", "test merged", "merged / indiv."):
            t.add_column(col)
        for r in res["models"]:
            t.add_row(r["checkpoint"], r["task"], f"{r['validation_merged_accuracy']:.4f}",
                      f"{r['individual_accuracy']:.4f}", f"{r['merged_accuracy']:.4f}", f"{r['normalized']:.3f}")
        con.print(t)
        if res["output"]:
            con.print(f"merged weights written to {res['output']}")
        for folder in res.get("save") or []:
            con.print(f"merged model saved to {folder} (use it with leanfit predict / evaluate / export)")
        if json_out:
            json_out.write_text(json.dumps(res, indent=1))

    @app.command()
    def barrier(
        a: Path = typer.Argument(..., help="Model A weights (.safetensors)."),
        b: Path = typer.Argument(..., help="Model B weights (.safetensors), same architecture."),
        task: str = typer.Option(..., "--task", help="Task the models were trained on (e.g. mnist1d-cnn)."),
        task_param: list[str] = typer.Option([], "--task-param", help="key=value task parameter (repeatable)."),
        points: int = typer.Option(11, help="Points on the path α ∈ [0, 1] (odd)."),
        png: Optional[Path] = typer.Option(None, help="Save the interpolation curve PNG here."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
        allow_code: bool = ALLOW_CODE,
    ) -> None:
        """Loss/accuracy barrier on the linear path A → B, before and after Git Re-Basin weight matching."""
        import json

        from rich.console import Console

        from ..engine.errors import check
        from ..engine.recipe import check_plain_data, yaml_load
        from ..workflows.merge import run_barrier

        opt_in_to_code(allow_code)
        params = {}
        for kv in task_param:
            check("=" in kv, "--task-param", kv, "key=value")
            k, v = kv.split("=", 1)
            params[k] = yaml_load(v, f"--task-param {kv}")
        check_plain_data(params, "--task-param")
        check_writable(png, "--png")
        check_writable(json_out, "--json")
        res = run_barrier(str(a), str(b), task, params, points, str(png) if png else None)
        con = Console()
        for k in ("naive", "aligned"):
            r = res[k]
            con.print(f"{k:8s} loss barrier {r['loss_barrier']:.4f}  accuracy barrier {r['accuracy_barrier']:.4f}  "
                      f"midpoint loss barrier {r['midpoint_loss_barrier']:.4f}")
        if png:
            con.print(f"curve written to {png}")
        if json_out:
            json_out.write_text(json.dumps(res, indent=1))
