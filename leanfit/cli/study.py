"""`leanfit search` (multi-objective study over a search space) and `leanfit report` (Pareto table, PNG, HTML,
performance profiles). Only typer is imported here; the study engine loads inside the commands."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ._common import ALLOW_CODE, check_writable, opt_in_to_code

from ..engine.store import DEFAULT_STORAGE


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        space: Path = typer.Argument(..., help="Search-space YAML (see docs/study.md)."),
        task: Optional[str] = typer.Option(None, help="Task name (overrides the space's 'task')."),
        trials: Optional[int] = typer.Option(None, "--trials", "-n", help="Total trials in the study (default 20)."),
        budget_minutes: Optional[float] = typer.Option(None, help="Stop taking new trials after this many minutes."),
        storage: str = typer.Option(DEFAULT_STORAGE, help="sqlite URL, journal:PATH (several processes on one "
                                    "host) or postgresql://... (many machines)."),
        study: Optional[str] = typer.Option(None, help="Study name (default: <space file stem>-<task>)."),
        objectives: Optional[str] = typer.Option(None, help="Comma list, e.g. accuracy,train_flops,trainable_params."),
        budget: Optional[List[str]] = typer.Option(None, help="Hard budget NAME<=LIMIT, repeatable, e.g. "
                                                   "trainable_fraction<=1%, train_memory_bytes<=5e6."),
        sampler: Optional[str] = typer.Option(None, help="tpe (default), nsga2, random or grid."),
        stopper: bool = typer.Option(True, "--stopper/--no-stopper", help="Successive-halving early stopping."),
        rung_resource: Optional[str] = typer.Option(None, help="Stopper rungs on 'samples' (default) or 'flops'."),
        min_resource: Optional[float] = typer.Option(None, help="First rung (samples or FLOPs); default: first eval."),
        eta: Optional[int] = typer.Option(None, help="Successive-halving reduction factor (default 3)."),
        executor: str = typer.Option("local", help="local (processes on this host) or ray."),
        workers: int = typer.Option(1, help="Parallel workers (processes or Ray tasks)."),
        seed: int = typer.Option(0, help="Sampler seed."),
        join: bool = typer.Option(False, help="Only work on an existing study's queue (extra workers)."),
        stale_after: float = typer.Option(600.0, help="Seconds without heartbeat before another host's RUNNING "
                                          "trial counts as interrupted."),
        save_best: Optional[Path] = typer.Option(None, help="After the search, retrain the best complete trial "
                                                 "(first objective, on validation) and save it as a model folder."),
        precheck: bool = typer.Option(True, "--precheck/--no-precheck", help="Skip, before training, points whose "
                                      "estimate (one metered step) breaks a --budget on params, memory or FLOPs."),
        allow_code: bool = ALLOW_CODE,
    ) -> None:
        """Search recipes for the Pareto frontier of accuracy vs cost; rerun the same command to resume."""
        import time

        from ..engine.errors import ConfigError, check
        from ..engine.recipe import load_mapping
        from ..engine.store import storage_url
        from ..study.config import StudyConfig, default_study_name
        from ..study.runner import run_study
        from ..study.stopper import StopperConfig

        opt_in_to_code(allow_code)
        storage = storage_url(storage)
        if save_best is not None:
            from ..workflows.model_io import check_writable as check_folder

            check_folder(save_best)  # before the search, not after it
        raw = load_mapping(space)
        stop = None
        if stopper:
            StopperConfig.from_dict(raw.get("stopper"))  # the file's own settings, checked before the overrides
            stop = dict(raw.get("stopper") or {})
            for k, v in (("resource", rung_resource), ("min_resource", min_resource), ("reduction_factor", eta)):
                if v is not None:
                    stop[k] = v
        if budget_minutes is not None and budget_minutes <= 0:
            raise ConfigError(f"--budget-minutes must be > 0, but got {budget_minutes}.")
        cfg = StudyConfig.from_space(
            raw, task=task, n_trials=trials, objectives=objectives, budgets=budget or None, sampler=sampler,
            seed=seed, deadline=time.time() + 60 * budget_minutes if budget_minutes else None)
        cfg.stopper, cfg.precheck = stop, precheck
        if stop is not None:
            StopperConfig.from_dict(stop)  # validate CLI overrides
        name = study or raw.get("study") or default_study_name(str(space), cfg.task)
        check(isinstance(name, str), "study", name, "a study name (text)")
        typer.echo(f"study {name!r} in {storage}: {cfg.n_trials} trials, objectives {', '.join(cfg.objectives)}"
                   + (f", budgets {cfg.budgets}" if cfg.budgets else "") + f", sampler {cfg.sampler}"
                   + (", successive halving" if stop is not None else ""))
        try:
            summary = run_study(cfg, storage, name, executor=executor, workers=workers, join=join,
                                stale_after_s=stale_after, log=typer.echo)
        except KeyboardInterrupt:
            typer.secho("interrupted: rerun the same command to resume (the interrupted trial will be retried).",
                        fg="yellow", err=True)
            raise typer.Exit(130)
        typer.echo(f"done: {summary.counts}" + (f"; {summary.skipped} skipped before training (estimate over "
                                                 "budget)" if summary.skipped else ""))
        _print_front(storage, name, list(cfg.objectives))
        if save_best is not None:
            _save_best(storage, name, cfg, save_best)

    @app.command()
    def report(
        study: Optional[List[str]] = typer.Option(None, help="Study name(s); default: every study in the storage."),
        storage: str = typer.Option(DEFAULT_STORAGE, help="Optuna storage URL."),
        cost: Optional[List[str]] = typer.Option(None, help="Cost(s) for the frontier (default: the study's "
                                                 "objectives, else train_flops)."),
        out: Path = typer.Option(Path("leanfit-report"), help="Output prefix: writes <out>.html and <out>.png "
                                 "(<out>-<task>.png and <out>-profiles.png across tasks)."),
        target_gap: float = typer.Option(0.01, help="Performance profiles: target = best accuracy on the task "
                                         "minus this (absolute)."),
        time_key: str = typer.Option("wall_time_s", "--time", help="Profile time axis: wall_time_s, flops or samples."),
    ) -> None:
        """Pareto table, PNG and self-contained HTML of stored runs; performance profiles across tasks."""
        from ..engine.errors import ConfigError
        from ..report.html import study_html
        from ..report.plots import profiles_png, study_png
        from ..report.profiles import performance_profiles

        check_writable(out.with_name(out.name + ".html"), "--out")
        results, costs = _load(storage, study, cost)
        if not results:
            raise ConfigError(f"no stored runs in {storage}" + (f" for study {study}" if study else "") +
                              ". Fix: run `leanfit search` or `leanfit run` first, or pass --storage.")
        for t in sorted({r.task for r in results}):
            _table([r for r in results if r.task == t], costs, f"Pareto set on {t}")
        profiles = None
        if len({r.task for r in results}) > 1:
            profiles = performance_profiles(results, gap=target_gap, time_key=time_key)
            _profile_table(profiles)
            typer.echo(f"wrote {profiles_png(profiles, out.with_name(out.name + '-profiles.png'))}")
        tasks = sorted({r.task for r in results})
        for t in tasks:  # one PNG per task (costs are not comparable across tasks)
            png = out.with_name(out.name + (".png" if len(tasks) == 1 else f"-{t}.png"))
            typer.echo(f"wrote {study_png([r for r in results if r.task == t], png, costs[0], costs=costs, title=t)}")
        page = study_html(results, out.with_name(out.name + ".html"), costs, profiles=profiles)
        typer.echo(f"wrote {page}")


def _load(storage: str, studies: Optional[list], cost: Optional[list]):
    import optuna

    from ..engine.store import load_runs, open_storage
    from ..study.objectives import ALIASES, MINIMIZE, constraint_values
    from ..engine.errors import UnknownNameError
    from ..study.config import CONFIG_ATTR

    st = open_storage(storage)
    names = studies or [s.study_name for s in optuna.get_all_study_summaries(st)]
    have = {s.study_name for s in optuna.get_all_study_summaries(st)}
    results, objs, budgets = [], [], {}
    for n in names:
        if n not in have:
            raise UnknownNameError("study", n, have)
        ident = optuna.load_study(study_name=n, storage=st).user_attrs.get(CONFIG_ATTR) or {}
        objs += [o for o in ident.get("objectives", []) if o != "accuracy" and o not in objs]
        for r in load_runs(st, n):  # hard budgets: an infeasible run is shown as such, never on the frontier
            if ident.get("budgets") and any(c > 0 for c in constraint_values(r, ident["budgets"])):
                r.extra["infeasible"] = True
            results.append(r)
    costs = [ALIASES.get(c, c) for c in (cost or objs or ["train_flops"])]
    for c in costs:
        if c not in MINIMIZE:
            raise UnknownNameError("cost", c, MINIMIZE)
    return results, costs


def _table(results, costs, title) -> None:
    from ..report.pareto import pareto_front
    from ..report.table import print_results

    front = pareto_front([r for r in results if not r.extra.get("infeasible")], tuple(costs))
    n = {s: sum(r.status == s for r in results) for s in ("complete", "pruned", "failed")}
    bad = sum(bool(r.extra.get("infeasible")) for r in results)
    print_results(front, title=f"{title} ({len(front)} of {len(results)} runs; {n['pruned']} stopped early, "
                               f"{n['failed']} failed, {bad} over budget) — accuracy ↑, {', '.join(costs)} ↓",
                  front=front)


def _profile_table(p) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"performance profiles: {p.time_key} to target, "
                    f"score = area under ρ(τ) over τ∈[1,{p.tau_max:g}]")
    t.add_column("recipe")
    t.add_column("score", justify="right")
    for task in p.targets:
        t.add_column(f"{task} ratio", justify="right")
    for s, score in p.ranking():
        t.add_row(s, f"{score:.3f}", *(f"{p.ratios[s][w]:.2f}" if p.ratios[s][w] != float("inf") else "—"
                                      for w in p.targets))
    Console(width=140).print(t)


def _save_best(storage: str, name: str, cfg: Any, folder: Path) -> None:
    from ..engine.store import load_runs
    from ..workflows.best_model import describe_difference, save_best

    typer.echo(f"--save-best: retraining the best trial by {cfg.objectives[0]} (validation) ...")
    best, again, out = save_best(load_runs(storage, name), cfg.objectives, folder, cfg.budgets)
    note = describe_difference(best, again)
    if note:
        typer.secho(f"warning: {note}", fg="yellow", err=True)
    typer.echo(f"saved {best.label} (recipe {best.recipe_id}) to {out}: validation {again.metrics}, test "
               f"{again.test_metrics}")


def _print_front(storage: str, name: str, objectives: list) -> None:
    results, costs = _load(storage, [name], [o for o in objectives if o != "accuracy"] or None)
    _table(results, costs, f"Pareto set of {name}")
