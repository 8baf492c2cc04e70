"""How much compute does a search need to find a recipe as good as an exhaustive grid's best?

On digits-mlp and mnist1d-cnn, a grid of 48 recipes (adapter × optimizer+lr × epochs) is run exhaustively once
(cached in benchmarks/results/search_grid_<task>.json). Then each search method runs on the *same* space (every
axis a categorical over the grid's values, so the grid covers the space) and we count the train FLOPs it spends
until it first completes a recipe within 0.5 accuracy points of the grid's best at ≤ the grid-best's train FLOPs.
Methods: random search; multi-objective TPE (accuracy ↑, train FLOPs ↓); TPE + our successive-halving
TrialStopper (rungs on train samples). 5 search seeds each; reported: how many seeds reached the target (k of 5),
the median share of grid FLOPs over all seeds (a seed that never reached it counts as ∞) and over the seeds that
did.

Everything that chooses uses VALIDATION accuracy (issue 13): the grid's best, the target, the searches' objective and
the stopper's rungs. Test accuracy is read once per completed grid run (run_recipe) and only reported: the grid
best's and each found recipe's.

Searches *replay* the cached grid runs instead of retraining: a trial's recipe is looked up by id and its stored
learning curve is fed eval by eval through the real TrialStopper; a stopped trial is charged the FLOPs up to the
eval where it stopped. This is exact because runs are deterministic for a seed (a live stopped run trains the same
prefix); the script checks it once per task by running one stopped trial live and comparing. A sampled recipe
that the study already completed is not retrained (the runner's ``reuse_duplicates``) and costs nothing.

    .venv/bin/python benchmarks/search.py            # ≈ 3-5 min on one core (grid runs once, then cached)
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leanfit.engine.callbacks import TrainState  # noqa: E402
from leanfit.engine.recipe import Recipe  # noqa: E402
from leanfit.engine.result import RunResult, environment  # noqa: E402
from leanfit.study.config import StudyConfig, make_sampler, open_study
from leanfit.study.trial import run_trial  # noqa: E402
from leanfit.study.space import SearchSpace  # noqa: E402
from leanfit.study.stopper import MemoryRungBoard, StopperConfig, TrialStopper  # noqa: E402
from leanfit.engine.task import build_task  # noqa: E402
from leanfit.engine.run import run_recipe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TASKS = ("digits-mlp", "mnist1d-cnn")
SEEDS = (0, 1, 2, 3, 4)
TOL = 0.005  # 0.5 accuracy points
MAX_TRIALS = 150
BATCH = 32
GRID_SCHEMA = 2  # 2: RunResults with validation metrics + test_metrics (issue 13); older caches are re-run


def space_for(task: str) -> dict[str, Any]:
    n = build_task(task).n_train
    steps = math.ceil(n / BATCH)
    return {
        "task": task,
        "schedule": {"batch_size": BATCH, "epochs": [1, 3], "eval_every": max(1, steps // 3)},
        "adapter": {"full": {}, "head_only": {}, "lora": {"r": [4, 16]}},
        "optimizer": {"adamw": {"lr": [1e-3, 3e-3, 1e-2]}, "lion": {"lr": [1e-4, 3e-4, 1e-3]}},
    }


def stopper_for(task: str) -> dict[str, Any]:
    n = build_task(task).n_train
    return {"resource": "samples", "min_resource": int(0.3 * n), "reduction_factor": 3, "min_trials": 3}


def run_grid(task: str) -> dict[str, Any]:
    path = RESULTS / f"search_grid_{task}.json"
    space = SearchSpace.from_dict(space_for(task))
    points = space.grid()
    if path.exists():
        cached = json.loads(path.read_text())
        if (cached.get("space") == space_for(task) and len(cached["runs"]) == len(points)
                and cached.get("schema") == GRID_SCHEMA):
            print(f"{task}: using cached grid {path.name}")
            return cached
    runs = {}
    t0 = time.time()
    for i, p in enumerate(points):
        r = run_recipe(space.recipe(p))
        runs[r.recipe_id] = r.to_dict()
        print(f"{task} grid {i + 1}/{len(points)}: {r.label:16s} {p} val {100 * r.accuracy:.1f}% "
              f"test {100 * r.test_accuracy:.1f}%", flush=True)
    out = {"task": task, "schema": GRID_SCHEMA, "space": space_for(task), "runs": runs, "seconds": time.time() - t0,
           "env": environment()}
    path.write_text(json.dumps(out, indent=1, default=str))
    return out


def replay(cache: dict[str, Any]):
    """run_fn for run_trial: a cached run, fed eval by eval through the trial's callbacks."""

    def run(recipe: Recipe, callbacks=()) -> RunResult:
        r = RunResult.from_dict(json.loads(json.dumps(cache[recipe.id])))
        st = TrainState(task=None, model=None, optimizer=None, seed=recipe.seed, epochs=recipe.schedule.epochs,
                        batch_size=recipe.schedule.batch_size, generator=None)
        st.planned_steps = r.extra["planned_steps"]
        for i, point in enumerate(r.curve):
            if i == len(r.curve) - 1:  # the final eval comes after on_fit_end
                for cb in callbacks:
                    cb.on_fit_end(st)
            st.step, st.samples_seen, st.flops = point["step"], point["samples"], point["flops"]
            st.metrics = {k: point[k] for k in ("accuracy", "eval_loss", "macro_f1") if k in point}  # validation
            for cb in callbacks:
                cb.on_eval(st)
            if st.pruned:
                r.status, r.curve, r.metrics = "pruned", r.curve[: i + 1], dict(st.metrics)
                r.test_metrics = {}  # a stopped run is never scored on test
                r.costs.update(train_flops=point["flops"], samples_seen=point["samples"], steps=point["step"],
                               wall_time_s=point["wall_time_s"])
                r.extra["stop_reason"] = st.stop_reason
                break
        return r

    return run


def search(task: str, grid: dict[str, Any], method: str, seed: int, target: tuple[float, float]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = "random" if method == "random" else "tpe"
    cfg = StudyConfig(space=space_for(task), sampler=sampler, seed=seed, objectives=("accuracy", "train_flops"),
                      stopper=stopper_for(task) if method == "tpe+sh" else None, n_trials=MAX_TRIALS)
    space = SearchSpace.from_dict(cfg.space)
    study = open_study(optuna.storages.InMemoryStorage(), "bench", cfg, sampler=make_sampler(cfg, space))
    run_fn = replay(grid["runs"])
    flops = wall = 0.0
    for n in range(1, MAX_TRIALS + 1):
        trial = study.ask()
        state, r = run_trial(study, trial, space, cfg, run_fn)
        if "duplicate_of" not in trial.user_attrs:  # a repeat of a completed recipe reuses its result: free
            flops += r.costs["train_flops"]
            wall += r.costs["wall_time_s"]
        if state == "complete" and r.accuracy >= target[0] and r.costs["train_flops"] <= target[1]:
            return {"found": True, "trials": n, "flops": flops, "wall_s": wall, "recipe": r.recipe,
                    "accuracy": r.accuracy, "test_accuracy": r.test_accuracy,
                    "pruned": sum(t.state.name == "PRUNED" for t in study.trials)}
    return {"found": False, "trials": MAX_TRIALS, "flops": math.inf, "wall_s": math.inf}


def check_replay(task: str, grid: dict[str, Any]) -> dict[str, Any]:
    """Run one stopped trial live and compare it with its replay (same rung values beforehand)."""
    space = SearchSpace.from_dict(space_for(task))
    cfg = StopperConfig(**stopper_for(task))
    worst = min(grid["runs"].values(), key=lambda r: r["curve"][0]["accuracy"] if r["curve"] else 1)
    board_live, board_replay = MemoryRungBoard(), MemoryRungBoard()
    for b in (board_live, board_replay):  # three strong peers at every rung: the worst recipe must stop at rung 0
        b.rungs = {k: [1.0, 1.0, 1.0] for k in range(5)}
    recipe = Recipe.from_dict(worst["recipe"])
    live = run_recipe(recipe, callbacks=[TrialStopper(cfg, board_live)])
    rep = replay(grid["runs"])(recipe, callbacks=[TrialStopper(cfg, board_replay)])
    same = (live.status == rep.status == "pruned" and live.costs["train_flops"] == rep.costs["train_flops"]
            and [p["accuracy"] for p in live.curve] == [p["accuracy"] for p in rep.curve])
    return {"recipe": recipe.label, "live_status": live.status, "replay_status": rep.status,
            "live_flops": live.costs["train_flops"], "replay_flops": rep.costs["train_flops"], "identical": same}


def main() -> None:
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"settings": {"tasks": TASKS, "seeds": SEEDS, "tolerance_acc_points": 100 * TOL,
                                        "max_trials": MAX_TRIALS, "batch_size": BATCH,
                                        "objectives": ["accuracy", "train_flops"],
                                        "methods": ["random", "tpe", "tpe+sh"],
                                        "selection": "validation (grid best, target, objectives, stopper rungs); "
                                                     "test reported only",
                                        "note": "searches replay the cached exhaustive grid (the grid covers the "
                                                "space: every axis is categorical over the grid values); a stopped "
                                                "trial is charged the FLOPs up to where it stopped"},
                           "env": environment(), "tasks": {}}
    for task in TASKS:
        grid = run_grid(task)
        runs = [RunResult.from_dict(r) for r in grid["runs"].values()]
        done = [r for r in runs if r.status == "complete"]
        best = max(done, key=lambda r: (r.accuracy, -r.costs["train_flops"]))
        target = (best.accuracy - TOL, best.costs["train_flops"])
        total = sum(r.costs["train_flops"] for r in runs)
        total_wall = sum(r.costs["wall_time_s"] for r in runs)
        hits = [r for r in done if r.accuracy >= target[0] and r.costs["train_flops"] <= target[1]]
        t = {"grid_size": len(runs), "grid_flops": total, "grid_wall_s": total_wall, "best": {
            "recipe": best.recipe, "label": best.label, "accuracy": best.accuracy,
            "test_accuracy": best.test_accuracy, "train_flops": best.costs["train_flops"]},
             "selection": "grid best = highest validation accuracy (ties: fewer train FLOPs); target = validation "
                          "accuracy ≥ best − 0.5 pts at ≤ its train FLOPs; test read once per completed run, reported",
             "target_validation_accuracy": target[0],
             "recipes_meeting_target": len(hits), "space": grid["space"], "stopper": stopper_for(task),
             "replay_check": check_replay(task, grid), "methods": {}}
        for method in ("random", "tpe", "tpe+sh"):
            per_seed = [search(task, grid, method, s, target) for s in SEEDS]
            frac = [p["flops"] / total for p in per_seed]
            hit = [p for p in per_seed if p["found"]]
            hf = [p["flops"] / total for p in hit]
            tests = [p["test_accuracy"] for p in hit]
            t["methods"][method] = {
                "found": len(hit), "seeds": len(SEEDS),
                "median_fraction_of_grid_flops": statistics.median(frac),  # a seed that never found it counts as ∞
                "median_fraction_of_grid_flops_found": statistics.median(hf) if hf else math.inf,
                "mean_fraction_of_grid_flops_found": statistics.fmean(hf) if hf else math.inf,
                "std_fraction_of_grid_flops_found": statistics.stdev(hf) if len(hf) > 1 else 0.0,
                "median_fraction_of_grid_wall": statistics.median(p["wall_s"] / total_wall for p in per_seed),
                "median_trials": statistics.median(p["trials"] for p in per_seed),
                "found_test_accuracy_mean": statistics.fmean(tests) if tests else None,
                "found_test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                "per_seed": per_seed}
            m = t["methods"][method]
            print(f"{task:12s} {method:7s}: found {m['found']}/{len(SEEDS)}, median {100 * m['median_fraction_of_grid_flops']:.1f}% "
                  f"of grid FLOPs ({100 * m['median_fraction_of_grid_flops_found']:.1f}% over found), "
                  f"{m['median_trials']} trials", flush=True)
        out["tasks"][task] = t
        print(f"{task}: best {best.label} val {100 * best.accuracy:.2f}% test {100 * best.test_accuracy:.2f}%; "
              f"{len(hits)}/{len(runs)} recipes meet the "
              f"target; replay check {t['replay_check']['identical']}")
    (RESULTS / "search.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {RESULTS / 'search.json'}")


if __name__ == "__main__":
    main()
