"""`leanfit demo`: real MiniLM fine-tuned on BBC News three ways; `leanfit demo lm`: the real SmolLM2-135M on BBC
News topics as generation — zero-shot, LoRA and full fine-tuning. Every cost measured, results stored and plotted."""
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


LM_RECIPES = (
    ("lora-r8", {"name": "lora", "r": 8, "alpha": 16}, {"name": "adamw", "lr": 1e-3}),
    ("full-ft", {"name": "full"}, {"name": "adamw", "lr": 3e-5}),
)


def lm_demo_recipes(n_train: int = 256, steps: int = 32, n_validation: int = 50, n_test: int = 100,
                    model: str | None = None):
    from ..engine.recipe import Recipe

    task = {"name": "lm-bbc-topic", "n_train": n_train, "n_validation": n_validation, "n_test": n_test,
            **({"model": model, "words": 3, "max_length": 96} if model else {})}
    return [Recipe.from_dict({"name": name, "task": task, "adapter": ad, "optimizer": opt,
                              "schedule": {"epochs": 1, "batch_size": 8, "max_steps": steps, "lr_schedule": "linear",
                                           "warmup_ratio": 0.1}, "seed": 0})
            for name, ad, opt in LM_RECIPES]


def zero_shot(task, name: str = "zero-shot"):
    """The untrained model scored like a finished run (validation, then test once): the baseline a fine-tune must
    beat, at zero training cost."""
    from ..engine.meters import count_params
    from ..engine.result import RunResult, environment

    model = task.build_model(0)
    val, test = task.evaluate(model, "validation"), task.evaluate(model, "test")
    r = RunResult(recipe={"name": name, "task": task.name}, recipe_id=f"zero-shot-{task.data_hash()[:6]}",
                  task=task.name, metrics=val.metrics, test_metrics=test.metrics, env=environment(),
                  data_hash=task.data_hash(), diagnostics={"validation": val.details, "test": test.details},
                  flags=list(val.flags) + [f"test:{f}" for f in test.flags])
    r.costs = {"trainable_params": 0, "total_params": count_params(model)[1], "optimizer_state_bytes": 0,
               "train_flops": 0.0, "samples_seen": 0, "steps": 0, "wall_time_s": 0.0}
    return r


def run_lm_demo(storage: str | None = None, plot: str | Path = "leanfit-demo-lm.png",
                study_name: str = "leanfit-demo-lm", steps: int = 32, model: str | None = None) -> list:
    from rich.console import Console

    from ..engine.task import build_task

    con = Console()
    recipes = lm_demo_recipes(steps=steps, model=model)
    con.print("[bold]leanfit demo lm[/]: SmolLM2-135M-Instruct (real weights, 4-bit GGUF dequantized; converted "
              f"once to ~/.cache/leanfit) on BBC News topics as generation: zero-shot, then {steps} steps of LoRA "
              "r=8 and of full fine-tuning.")
    task = build_task(recipes[0].task.name, **recipes[0].task.kwargs)
    return _run_and_report(con, recipes, task, storage, plot, study_name, "SmolLM2 on BBC News topics",
                           extra=[zero_shot(task)])


def run_demo(n_train: int = 320, epochs: int = 3, storage: str | None = None,
             plot: str | Path = "leanfit-demo.png", study_name: str = "leanfit-demo") -> list:
    from rich.console import Console

    from ..engine.task import build_task

    con = Console()
    recipes = demo_recipes(n_train, epochs)
    con.print(f"[bold]leanfit demo[/]: MiniLM-L6 (22.6M params, real pretrained weights) on BBC News topics, "
              f"{n_train} training articles, {epochs} epochs, 3 recipes.")
    task = build_task(recipes[0].task.name, **recipes[0].task.kwargs)
    return _run_and_report(con, recipes, task, storage, plot, study_name, "MiniLM on BBC News")


def _run_and_report(con, recipes, task, storage, plot, study_name: str, title: str, extra=()) -> list:
    """Train each recipe with a progress bar, store every run, print the table and write the PNG."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..engine.run import run_recipe
    from ..engine.store import save_run, storage_url
    from ..report.pareto import pareto_front
    from ..report.plots import pareto_png
    from ..report.progress import ProgressBar
    from ..report.table import print_results

    storage = storage_url(storage)
    results = list(extra)
    for r in results:
        save_run(r, storage, study_name=study_name)
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=con) as progress:
        for r in recipes:
            results.append(run_recipe(r, task=task, callbacks=[ProgressBar(r.name, progress)]))
            save_run(results[-1], storage, study_name=study_name)
    front = pareto_front(results, ("trainable_params",))
    print_results(results, title=f"{title} — accuracy and costs (★ = Pareto-optimal on validation accuracy vs "
                                 "trainable params)", front=front)
    png = pareto_png([r for r in results if r.costs.get("trainable_params")], plot, cost="trainable_params",
                     title=f"leanfit demo: {title}")
    con.print(f"Results stored in {storage} (study '{study_name}'); plot written to {png}.")
    con.print("Next: `leanfit list` for every method; `leanfit run recipe.yaml` for your own recipe.")
    return results
