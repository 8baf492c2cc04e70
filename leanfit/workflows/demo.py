"""`leanfit demo`: real MiniLM fine-tuned on BBC News three ways, every cost measured, results stored and plotted."""
from __future__ import annotations

from pathlib import Path

DEMO_RECIPES = (
    ("head-only", {"name": "head_only"}, {"name": "adamw", "lr": 1e-2}),
    ("lora-r8", {"name": "lora", "r": 8, "alpha": 16}, {"name": "adamw", "lr": 1e-2}),
    ("full-ft", {"name": "full"}, {"name": "adamw", "lr": 1e-4}),
)


def demo_recipes(n_train: int = 320, epochs: int = 3, n_validation: int = 200, n_test: int = 400,
                 max_length: int = 64):
    from ..engine.recipe import Recipe

    task = {"name": "minilm-bbc", "n_train": n_train, "n_validation": n_validation, "n_test": n_test,
            "max_length": max_length}
    return [Recipe.from_dict({"name": name, "task": task, "adapter": ad, "optimizer": opt,
                              "schedule": {"epochs": epochs, "batch_size": 32, "lr_schedule": "linear",
                                           "warmup_ratio": 0.1}, "seed": 0})
            for name, ad, opt in DEMO_RECIPES]


def run_demo(n_train: int = 320, epochs: int = 3, storage: str | None = None,
             plot: str | Path = "leanfit-demo.png", study_name: str = "leanfit-demo") -> list:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..engine.run import run_recipe
    from ..engine.store import save_run, storage_url
    from ..engine.task import build_task
    from ..report.pareto import pareto_front
    from ..report.plots import pareto_png
    from ..report.progress import ProgressBar
    from ..report.table import print_results

    con, storage = Console(), storage_url(storage)
    recipes = demo_recipes(n_train, epochs)
    con.print(f"[bold]leanfit demo[/]: MiniLM-L6 (22.7M params, real pretrained weights) on BBC News topics, "
              f"{n_train} training articles, {epochs} epochs, 3 recipes.")
    task = build_task(recipes[0].task.name, **recipes[0].task.kwargs)
    results = []
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=con) as progress:
        for r in recipes:
            results.append(run_recipe(r, task=task, callbacks=[ProgressBar(r.name, progress)]))
            save_run(results[-1], storage, study_name=study_name)
    front = pareto_front(results, ("trainable_params",))
    print_results(results, title="MiniLM on BBC News — accuracy and costs (★ = Pareto-optimal on accuracy vs "
                                 "trainable params)", front=front)
    png = pareto_png(results, plot, cost="trainable_params", title="leanfit demo: MiniLM on BBC News")
    con.print(f"Results stored in {storage} (study '{study_name}'); plot written to {png}.")
    con.print("Next: `leanfit list` for every method; `leanfit run recipe.yaml` for your own recipe.")
    return results
