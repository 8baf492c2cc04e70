"""Optimizers benchmark: AlgoPerf-style time-to-target on digits-mlp, mnist1d-cnn and MiniLM LoRA fine-tuning
(minilm-bbc-lora; plus the older thin full fine-tune minilm-bbc).

For each optimizer: a 3-point LR sweep (seed 0), the best LR (earliest time-to-target, then best final accuracy)
re-run on seeds 1 and 2; time-to-target = train wall time (eval excluded) at the first eval reaching the task's
target (∞ if never), median over the 3 seeds; also steps-to-target, final accuracy (mean ± std, median) and
optimizer-state bytes. Optimizers listed in MEMORY_ONLY run once (seed 0, one LR) to record state bytes, train
memory and time per step only (no time-to-target claim). Performance-profile scores (AlgoPerf, τ_max = 4) from
leanfit.report.profiles: over the two toy tasks (all optimizers), over MiniLM LoRA alone, and over the three tasks
for the optimizers that ran all three.

    python benchmarks/optim.py --task digits-mlp      # → results/optim_digits-mlp.json
    python benchmarks/optim.py --task mnist1d-cnn
    python benchmarks/optim.py --task minilm-bbc-lora --pilot   # one AdamW run: its curve sets the target
    python benchmarks/optim.py --task minilm-bbc-lora           # → results/optim_minilm-bbc-lora.json
    # or side by side on 2 cores (1 thread each), then merged:
    python benchmarks/optim.py --task minilm-bbc-lora --only adamw adabelief lion sgdsai mezo --part a &
    python benchmarks/optim.py --task minilm-bbc-lora --only adafactor frugal schedulefreeadamw muon --part b
    python benchmarks/optim.py --task minilm-bbc-lora --join
    python benchmarks/optim.py --task minilm-bbc-lora --step-times  # quiet per-step times (see step_times)
    python benchmarks/optim.py --combine              # → results/optim.json (+ profile scores)
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write  # noqa: E402

TASKS = {  # target: reachable by tuned AdamW within the epoch budget at this scale
    "digits-mlp": {"target": 0.95, "epochs": 4, "eval_every": 15, "batch_size": 32, "task": {"name": "digits-mlp"}},
    "mnist1d-cnn": {"target": 0.60, "epochs": 4, "eval_every": 25, "batch_size": 32, "task": {"name": "mnist1d-cnn"}},
    "minilm-bbc": {"target": 0.85, "epochs": 2, "eval_every": 10, "batch_size": 16,
                   "task": {"name": "minilm-bbc", "n_train": 320, "n_eval": 100, "max_length": 64}},
    # real pretrained MiniLM + peft LoRA r=8 on query/value (+ trainable head): cheap steps, so every optimizer
    # gets the full protocol. Target: see TARGET_NOTE (set from the --pilot AdamW run, not from the sweep).
    "minilm-bbc-lora": {"target": 0.93, "epochs": 2, "eval_every": 5, "batch_size": 16,
                        "task": {"name": "minilm-bbc", "n_train": 320, "n_eval": 200, "max_length": 64},
                        "adapter": {"name": "lora", "r": 8, "alpha": 16, "target_modules": ["query", "value"]}},
}
TARGET_NOTE = {"minilm-bbc-lora": (
    "0.93, from the --pilot AdamW run (lr 3e-3, seed 0; results/optim_minilm-bbc-lora_pilot.json): its eval curve "
    "was 0.450, 0.925, 0.895, 0.875, 0.905, 0.940, 0.920, 0.945 at steps 5..40, final 0.945. 0.93 is first reached "
    "at step 30 of 40 (3/4 of the budget, as AlgoPerf sets targets a tuned baseline reaches within its budget); a "
    "lower target (≤ 0.925) would be met by the transient peak at step 10 and not separate the optimizers")}
SWEEP = {
    "sgd": ("lr", [0.03, 0.1, 0.3], {}),
    "adamw": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "adan": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "lion": ("lr", [1e-4, 3e-4, 1e-3], {}),
    "adabelief": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "sgdsai": ("lr", [3e-3, 1e-2, 3e-2], {}),
    "adafactor": ("lr", [1e-3, 3e-3, 1e-2], {"relative_step": False, "scale_parameter": False}),
    "galore": ("lr", [1e-3, 3e-3, 1e-2], {"rank": 8, "update_proj_gap": 50}),
    "muon": ("lr", [0.005, 0.02, 0.05], {"adamw_lr": 3e-3}),
    "prodigy": ("lr", [0.5, 1.0, 2.0], {}),
    "schedulefreeadamw": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "soap": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "came": ("lr", [3e-4, 1e-3, 3e-3], {}),
    "frugal": ("lr", [1e-3, 3e-3, 1e-2], {"density": 0.25, "update_gap": 50}),
    "sania": ("lr", [0.1, 0.3, 1.0], {}),
    "mezo": ("lr", [1e-3, 3e-3, 1e-2], {"eps": 1e-3}),
}
MINILM_OPTS = {"adamw": ("lr", [5e-5], {}), "sgdsai": ("lr", [1e-3], {}), "mezo": ("lr", [1e-5], {"eps": 1e-3})}
# LoRA factors and the head train at ~10-100× full fine-tuning LRs (the adapters benchmark used 2e-3 for AdamW);
# Lion ~3-10× smaller than AdamW (its paper); Muon's LR is for the orthogonalised LoRA factors, the head uses
# AdamW at adamw_lr.
LORA_SWEEP = {
    "adamw": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "adabelief": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "lion": ("lr", [1e-4, 3e-4, 1e-3], {}),
    "sgdsai": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "adafactor": ("lr", [1e-3, 3e-3, 1e-2], {"relative_step": False, "scale_parameter": False}),
    "frugal": ("lr", [1e-3, 3e-3, 1e-2], {"density": 0.25, "update_gap": 50}),
    "schedulefreeadamw": ("lr", [1e-3, 3e-3, 1e-2], {}),
    "muon": ("lr", [0.005, 0.02, 0.05], {"adamw_lr": 3e-3}),
}
SWEEPS = {"minilm-bbc": MINILM_OPTS, "minilm-bbc-lora": LORA_SWEEP}
# one run (seed 0, one setting) for memory and time per step only: MeZO needs ~100× more steps than first-order
# methods (the paper ran 100k steps), far beyond this budget. lr 5e-5, ε 1e-2: the MeZO authors' LoRA setting
# (princeton-nlp/MeZO large_models/README example for MODE=lora).
MEMORY_ONLY = {"minilm-bbc-lora": {"mezo": {"lr": 5e-5, "eps": 1e-2}}}


def ttt(curve, target, key):
    for p in curve:
        if p["accuracy"] >= target:
            return float(p[key])
    return math.inf


def one(task_name, cfg, opt, params, seed, curve=False):
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import run_recipe

    rec = {"task": cfg["task"], "optimizer": {"name": opt, **params},
           "schedule": {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "eval_every": cfg["eval_every"]},
           "seed": seed}
    if "adapter" in cfg:
        rec["adapter"] = cfg["adapter"]
    r = run_recipe(Recipe.from_dict(rec))
    out = {"optimizer": opt, "params": params, "seed": seed, "status": r.status,
           "final_accuracy": r.metrics.get("accuracy"), "time_to_target_s": ttt(r.curve, cfg["target"], "wall_time_s"),
           "steps_to_target": ttt(r.curve, cfg["target"], "step"), "train_time_s": r.costs["wall_time_s"],
           "optimizer_state_bytes": r.costs["optimizer_state_bytes"], "train_flops": r.costs["train_flops"],
           "train_memory_bytes": r.costs["train_memory_bytes"]}
    if curve:  # the raw eval curve, so a target can be re-derived from the JSON alone
        out.update(steps=r.costs["steps"], time_per_step_s=r.costs["wall_time_s"] / max(1, r.costs["steps"]),
                   trainable_params=r.costs["trainable_params"], peak_rss_bytes=r.costs["peak_rss_bytes"],
                   curve=[{k: p[k] for k in ("step", "wall_time_s", "accuracy", "eval_loss")} for p in r.curve])
    return out


def _std(xs):
    return statistics.stdev(xs) if len(xs) > 1 else None


def run_task(task_name, sweep, seeds=3, memory_only=None, part=None):
    import torch

    torch.set_num_threads(1)
    cfg = TASKS[task_name]
    detail = "adapter" in cfg  # newer tasks keep curves, time per step and accuracy mean ± std
    runs, summary = [], {}
    t_all = time.time()

    def save():  # after every optimizer, so a stopped run keeps what it finished
        ref = summary.get("adamw", {}).get("optimizer_state_bytes")
        for s in summary.values():
            s["state_bytes_vs_adamw"] = s["optimizer_state_bytes"] / ref if ref else None
        run = {"task": task_name, **cfg, "sweep": {k: list(v[1]) for k, v in sweep.items() if k in summary},
               "fixed": {k: v[2] for k, v in sweep.items() if k in summary}, "seeds": list(range(seeds)),
               "torch_threads": 1,
               "protocol": f"LR sweep on seed 0; best LR re-run on seeds 1..{seeds - 1}; medians over {seeds} seeds",
               "memory_only": {k: v for k, v in (memory_only or {}).items() if k in summary},
               "wall_clock_total_s": time.time() - t_all}
        if task_name in TARGET_NOTE:
            run["target_note"] = TARGET_NOTE[task_name]
        write(f"optim_{task_name}" + (f".part-{part}" if part else ""), run, {"summary": summary, "runs": runs})

    for opt, (key, grid, extra) in sweep.items():
        t0 = time.time()
        sw = [one(task_name, cfg, opt, {**extra, key: v}, 0, detail) for v in grid]
        runs += sw
        best = min(sw, key=lambda r: (r["time_to_target_s"], -(r["final_accuracy"] or 0)))
        reps = [best] + [one(task_name, cfg, opt, best["params"], s, detail) for s in range(1, seeds)]
        runs += reps[1:]
        tt = [r["time_to_target_s"] for r in reps]
        acc = [r["final_accuracy"] or 0 for r in reps]
        summary[opt] = {"best_params": best["params"], "median_time_to_target_s": statistics.median(tt),
                        "median_steps_to_target": statistics.median(r["steps_to_target"] for r in reps),
                        "reached_target": sum(math.isfinite(t) for t in tt),
                        "median_final_accuracy": statistics.median(acc),
                        "optimizer_state_bytes": best["optimizer_state_bytes"],
                        "train_memory_bytes": best["train_memory_bytes"]}
        if detail:
            summary[opt].update(
                final_accuracy_mean=statistics.fmean(acc), final_accuracy_std=_std(acc),
                median_time_per_step_s=statistics.median(r["time_per_step_s"] for r in reps),
                trainable_params=best["trainable_params"], seeds=[r["seed"] for r in reps],
                sweep_seed0={str(r["params"][key]): {"time_to_target_s": r["time_to_target_s"],
                                                     "steps_to_target": r["steps_to_target"],
                                                     "final_accuracy": r["final_accuracy"]} for r in sw})
        print(f"{task_name} {opt}: {summary[opt]} ({time.time() - t0:.0f}s)", flush=True)
        save()
    for opt, params in (memory_only or {}).items():
        r = one(task_name, cfg, opt, params, 0, detail)
        runs.append(r)
        summary[opt] = {"memory_only": True, "best_params": params, "median_time_to_target_s": r["time_to_target_s"],
                        "median_steps_to_target": r["steps_to_target"], "reached_target": int(
                            math.isfinite(r["time_to_target_s"])), "median_final_accuracy": r["final_accuracy"],
                        "optimizer_state_bytes": r["optimizer_state_bytes"],
                        "train_memory_bytes": r["train_memory_bytes"]}
        if detail:
            summary[opt].update(final_accuracy_mean=r["final_accuracy"], final_accuracy_std=None,
                                median_time_per_step_s=r["time_per_step_s"], trainable_params=r["trainable_params"],
                                seeds=[0])
        print(f"{task_name} {opt} (memory/time only): {summary[opt]}", flush=True)
    save()


def join_parts(task_name):
    """Merge optim_<task>.part-*.json (optimizers split over worker processes, 1 thread each) into one file."""
    files = sorted(RESULTS.glob(f"optim_{task_name}.part-*.json"))
    if not files:
        raise SystemExit(f"no part files for {task_name} in {RESULTS}")
    parts = [json.loads(f.read_text()) for f in files]
    run = dict(parts[0]["run"])
    for k in ("sweep", "fixed", "memory_only"):
        run[k] = {o: v for p in parts for o, v in p["run"][k].items()}
    run["workers"] = {f.name.split(".part-")[1][:-5]: list(p["results"]["summary"]) for f, p in zip(files, parts)}
    run["wall_clock_total_s"] = max(p["run"]["wall_clock_total_s"] for p in parts)  # the workers ran side by side
    run["wall_clock_per_worker_s"] = [p["run"]["wall_clock_total_s"] for p in parts]
    summary = {o: s for p in parts for o, s in p["results"]["summary"].items()}
    ref = summary.get("adamw", {}).get("optimizer_state_bytes")
    for s in summary.values():
        s["state_bytes_vs_adamw"] = s["optimizer_state_bytes"] / ref if ref else None
    write(f"optim_{task_name}", run, {"summary": summary, "runs": [r for p in parts for r in p["results"]["runs"]]})
    for f in files:
        f.unlink()


def step_times(task_name, steps=10):
    """Per-step train time of every optimizer's chosen setting, measured back to back in one quiet process (seed 0,
    ``steps`` steps, eval excluded). The sweep's own wall times are only comparable if the machine was equally loaded
    throughout; when it was not, steps-to-target × this step time is the comparable time-to-target (both are kept)."""
    import torch

    from leanfit.engine.recipe import Recipe
    from leanfit.engine.task import build_task
    from leanfit.engine.run import run_recipe

    torch.set_num_threads(1)
    cfg = TASKS[task_name]
    path = RESULTS / f"optim_{task_name}.json"
    data = json.loads(path.read_text())
    task_kw = {**cfg["task"], "n_eval": 16}  # same train split (seeded separately); a tiny final eval
    task = build_task(task_kw["name"], **{k: v for k, v in task_kw.items() if k != "name"})
    out = {}
    for opt, s in data["results"]["summary"].items():
        rec = {"task": task_kw, "optimizer": {"name": opt, **s["best_params"]}, "seed": 0,
               "schedule": {"epochs": 1, "batch_size": cfg["batch_size"], "max_steps": steps}}
        if "adapter" in cfg:
            rec["adapter"] = cfg["adapter"]
        r = run_recipe(Recipe.from_dict(rec), task=task)
        out[opt] = r.costs["wall_time_s"] / r.costs["steps"]
        s["quiet_time_per_step_s"] = out[opt]
        s["est_time_to_target_s"] = s["median_steps_to_target"] * out[opt]  # ∞ stays ∞
        print(f"{opt:20s} {out[opt]:.3f} s/step  est. time to target {s['est_time_to_target_s']:.1f} s", flush=True)
    data["run"]["step_time_pass"] = {"steps": steps, "seed": 0, "torch_threads": 1, "order": list(out),
                                     "note": "quiet per-step train time of each chosen setting, one process, "
                                             "back to back; est_time_to_target_s = median steps × this time"}
    write(f"optim_{task_name}", data["run"], data["results"])


def pilot(task_name, opt="adamw"):
    """One run of ``opt`` at the middle of its grid, seed 0, with the eval curve: the target is chosen from it."""
    import torch

    torch.set_num_threads(1)
    cfg = TASKS[task_name]
    key, grid, extra = SWEEPS.get(task_name, SWEEP)[opt]
    r = one(task_name, cfg, opt, {**extra, key: grid[len(grid) // 2]}, 0, curve=True)
    for p in r["curve"]:
        print(f"step {p['step']:4d}  {p['wall_time_s']:7.1f}s  acc {p['accuracy']:.3f}  loss {p['eval_loss']:.3f}")
    write(f"optim_{task_name}_pilot", {"task": task_name, **cfg, "pilot": opt, "torch_threads": 1}, r)


def combine():
    from leanfit.report.profiles import performance_ratios, profile_scores

    parts = {}
    for t in TASKS:
        p = RESULTS / f"optim_{t}.json"
        if p.exists():
            parts[t] = json.loads(p.read_text())
    # the main profile covers the workloads every optimizer ran (the thin full fine-tune minilm-bbc ran only a few:
    # reported per task). MiniLM LoRA ran 8 of the 16 optimizers: mixing it in would score the 8 others ∞ on it, so
    # it gets its own profile (one workload), plus a 3-workload profile over the optimizers that ran all three.
    profiled = [t for t in ("digits-mlp", "mnist1d-cnn") if t in parts]

    def table(key, tasks, only=None):
        out = {}
        for t in tasks:
            for opt, s in parts[t]["results"]["summary"].items():
                if s.get("memory_only") or (only is not None and opt not in only):
                    continue  # a one-LR, one-seed memory run is not a tuned submission
                v = s.get("est_time_to_target_s", s["median_time_to_target_s"]) if key == "time" else s[key]
                out.setdefault(opt, {})[t] = float(v) if v is not None else math.inf
        return out

    times, steps = table("median_time_to_target_s", profiled), table("median_steps_to_target", profiled)
    scores = profile_scores(times)
    ratios = performance_ratios(times)
    step_scores = profile_scores(steps)
    extra_profiles = {}
    if "minilm-bbc-lora" in parts:
        lora = ["minilm-bbc-lora"]
        both = [t for t in (*profiled, *lora)]
        common = set(table("median_time_to_target_s", lora))
        for t in profiled:
            common &= set(table("median_time_to_target_s", [t]))
        # time on minilm-bbc-lora: steps-to-target × quiet per-step time where --step-times ran (the sweep's wall
        # times were taken under changing load); the measured times are scored too, as score_time_measured
        for name, tasks, only in (("minilm_lora", lora, None), ("three_tasks", both, common)):
            tt, st = table("time", tasks, only), table("median_steps_to_target", tasks, only)
            tm = table("median_time_to_target_s", tasks, only)
            extra_profiles[name] = {
                "tasks": tasks, "optimizers": sorted(tt),
                "time_key": {t: ("est_time_to_target_s" if any("est_time_to_target_s" in v for v in
                                 parts[t]["results"]["summary"].values()) else "median_time_to_target_s")
                             for t in tasks},
                "score_time": dict(sorted(profile_scores(tt).items(), key=lambda kv: -kv[1])),
                "score_steps": dict(sorted(profile_scores(st).items(), key=lambda kv: -kv[1])),
                "score_time_measured": dict(sorted(profile_scores(tm).items(), key=lambda kv: -kv[1])),
                "ratios_time": performance_ratios(tt), "ratios_steps": performance_ratios(st)}
    adamw_state = {t: d["results"]["summary"].get("adamw", {}).get("optimizer_state_bytes") for t, d in parts.items()}
    state_ratio = {t: {o: (s["optimizer_state_bytes"] / adamw_state[t] if adamw_state[t] else None)
                       for o, s in d["results"]["summary"].items()} for t, d in parts.items()}
    write("optim", {"tasks": {t: d["run"] for t, d in parts.items()}, "tau_max": 4.0, "profiled_tasks": profiled,
                    "extra_profiles": {k: v["tasks"] for k, v in extra_profiles.items()}},
          {"profile_score": dict(sorted(scores.items(), key=lambda kv: -kv[1])), "ratios": ratios,
           "profile_score_steps": dict(sorted(step_scores.items(), key=lambda kv: -kv[1])),
           "profiles": extra_profiles,
           "state_bytes_vs_adamw": state_ratio, "per_task": {t: d["results"]["summary"] for t, d in parts.items()}})
    for o, s in sorted(scores.items(), key=lambda kv: -kv[1]):
        print(f"{o:20s} score={s:.3f} steps-score={step_scores[o]:.3f} "
              + " ".join(f"{t}={times[o].get(t, math.inf):.2f}s/{steps[o].get(t, math.inf):.0f}st" for t in profiled))
    for name, p in extra_profiles.items():
        print(f"-- {name} ({', '.join(p['tasks'])})")
        for o, s in p["score_time"].items():
            print(f"{o:20s} score={s:.3f} steps-score={p['score_steps'][o]:.3f} "
                  f"measured-time-score={p['score_time_measured'][o]:.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=list(TASKS))
    ap.add_argument("--only", nargs="*", help="subset of optimizers")
    ap.add_argument("--combine", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pilot", action="store_true", help="one AdamW run with its curve (to choose the target)")
    ap.add_argument("--part", help="write optim_<task>.part-<PART>.json (run --only subsets side by side)")
    ap.add_argument("--join", action="store_true", help="merge the part files of --task into optim_<task>.json")
    ap.add_argument("--step-times", action="store_true",
                    help="re-time each optimizer's chosen setting back to back (quiet machine) into the task JSON")
    a = ap.parse_args()
    if a.combine:
        combine()
    elif a.join:
        join_parts(a.task)
    elif a.step_times:
        step_times(a.task)
    elif a.pilot:
        pilot(a.task)
    else:
        sweep = SWEEPS.get(a.task, SWEEP)
        mem = MEMORY_ONLY.get(a.task, {})
        if a.only:
            sweep = {k: v for k, v in sweep.items() if k in a.only}
            mem = {k: v for k, v in mem.items() if k in a.only}
        run_task(a.task, sweep, a.seeds, mem, a.part)
