"""Adapters benchmark: every registered adapter on MiniLM + BBC News (and TREC when /work/shared/data has it).

Per method: test accuracy mean ± std over seeds (test is scored once per finished run by ``run_recipe``; nothing
here chooses anything: one learning rate per method family, fixed up front), the final validation accuracy beside
it, runs flagged as collapsed / at the majority baseline, trainable params, optimizer-state bytes, train FLOPs,
peak RSS (all from ``run_recipe``), and median train-step time relative to full fine-tuning and to peft LoRA,
measured round-robin in this process on one fixed batch (so machine load hits all methods alike). Writes
benchmarks/results/adapters.json and adapters_<task>.png (test accuracy vs trainable params, Pareto frontier).

Usage: .venv/bin/python benchmarks/adapters.py [--seeds 3] [--n-train 240] [--epochs 2] [--tasks minilm-bbc]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from common import RESULTS, median, write  # noqa: E402

T = ("query", "value")
# name -> (adapter params, learning rate). One lr per method family, not tuned per method (recorded in the JSON).
METHODS: dict[str, tuple[dict, float]] = {
    "full": ({}, 5e-5),
    "head_only": ({}, 3e-3),
    "lora": ({"r": 8, "alpha": 16, "target_modules": T}, 2e-3),
    "dora": ({"r": 8, "target_modules": T}, 2e-3),
    "vera": ({"r": 256, "target_modules": T}, 1e-2),
    "ia3": ({"target_modules": T}, 1e-2),
    "loha": ({"r": 8, "target_modules": T}, 2e-3),
    "lokr": ({"r": 8, "target_modules": T}, 2e-3),
    "oft": ({"target_modules": T}, 2e-3),
    "boft": ({"target_modules": T}, 2e-3),
    "vblora": ({"r": 4, "target_modules": T}, 2e-3),
    "hra": ({"r": 8, "target_modules": T}, 2e-3),
    "fourierft": ({"r": 1000, "target_modules": T}, 5e-3),
    "ln_tuning": ({}, 2e-3),
    "lora_xs": ({"r": 16, "target_modules": T}, 5e-3),
    "nola": ({"r": 8, "num_basis_a": 64, "num_basis_b": 64, "target_modules": T}, 1e-2),
    "share_lora": ({"r": 8, "target_modules": T}, 2e-3),
    "ssf": ({"target_modules": ("query", "key", "value", "dense")}, 5e-3),
    "bitfit": ({}, 5e-3),
    "houlsby": ({"bottleneck": 16, "target_modules": ("output.dense",)}, 2e-3),
    "compacter": ({"bottleneck": 16, "n": 4, "target_modules": ("output.dense",)}, 2e-3),
    "ether": ({"n_blocks": 4, "target_modules": T}, 2e-3),
    "ether_plus": ({"n_blocks": 4, "target_modules": T}, 2e-3),
}


def recipe(task: str, name: str, seed: int, args):
    from leanfit.engine.recipe import Recipe

    params, lr = METHODS[name]
    return Recipe.from_dict({"name": name, "task": {"name": task}, "adapter": {"name": name, **params},
                             "optimizer": {"name": "adamw", "lr": lr},
                             "schedule": {"epochs": args.epochs, "batch_size": args.batch_size,
                                          "eval_every": 10 ** 7},  # validation once, at the end (nothing chooses)
                             "seed": seed})


def step_times(task, names: list[str], reps: int, batch_size: int) -> dict[str, float]:
    """Median seconds of one train step (forward, backward, AdamW step) per method, interleaved round-robin."""
    from leanfit.engine import registry
    from leanfit.methods.base import trainable_named_parameters

    batch = task.batch("train", torch.arange(batch_size))
    runs = {}
    for n in names:
        params, lr = METHODS[n]
        model = registry.get("adapters", n).build(params).apply(task.build_model(0), task)
        model.train()
        runs[n] = (model, torch.optim.AdamW([p for _, p in trainable_named_parameters(model)], lr=lr))
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps + 1):
        for n in names:
            model, opt = runs[n]
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(task.forward(model, batch), batch["labels"])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if rep:  # rep 0 warms up
                times[n].append(time.perf_counter() - t0)
    return {n: median(v) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="+", default=["minilm-bbc"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-validation", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--timing-reps", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--all-seeds-for", nargs="+", default=["full", "head_only", "lora", "lora_xs", "nola"],
                    help="methods run with --seeds seeds; the others run seed 0 only (time budget)")
    ap.add_argument("--keep-other-tasks", action="store_true", help="merge into an existing adapters.json")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNGs from adapters.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.plot_only:
        import json

        res = json.loads((RESULTS / "adapters.json").read_text())["results"]
        for t, rows in res.items():
            if not t.endswith(("_claims", "_settings")):
                plot_means(rows, RESULTS / f"adapters_{t}.png", f"{t}: test accuracy vs trainable params")
        return

    from leanfit.engine.task import build_task
    from leanfit.engine.run import run_recipe

    out: dict = {}
    for tname in args.tasks:
        task = build_task(tname, n_train=args.n_train, n_validation=args.n_validation, n_test=args.n_test,
                          max_length=args.max_length)
        t0 = time.time()
        st = step_times(task, args.methods, args.timing_reps, args.batch_size)
        print(f"[{tname}] step times measured in {time.time() - t0:.0f}s", flush=True)
        rows = {}
        for name in args.methods:
            accs, vals, flags, res = [], [], [], None
            for seed in range(args.seeds if name in args.all_seeds_for else 1):
                res = run_recipe(recipe(tname, name, seed, args), task=task)
                accs.append(res.test_metrics.get("accuracy", float("nan")))
                vals.append(res.metrics.get("accuracy", float("nan")))
                flags.append(res.flags)
            c = res.costs
            rows[name] = {
                "params": METHODS[name][0], "lr": METHODS[name][1],
                "accuracy": accs, "accuracy_mean": statistics.mean(accs),  # test (scored once per run)
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
                "val_accuracy": vals, "val_accuracy_mean": statistics.mean(vals),
                "val_accuracy_std": statistics.stdev(vals) if len(vals) > 1 else None,
                "flags": flags, "flagged_runs": sum(bool(f) for f in flags), "seeds": len(accs),
                "trainable_params": c["trainable_params"], "total_params": c["total_params"],
                "optimizer_state_bytes": c["optimizer_state_bytes"], "train_flops": c["train_flops"],
                "cache_flops": c["cache_flops"], "peak_rss_bytes": c["peak_rss_bytes"],
                "train_wall_time_s": c["wall_time_s"], "step_time_s_median": st[name],
                "step_time_vs_full": st[name] / st["full"] if "full" in st else None,
                "step_time_vs_peft_lora": st[name] / st["lora"] if "lora" in st else None,
            }
            print(f"[{tname}] {name:11s} test {100 * rows[name]['accuracy_mean']:.1f}±{100 * (rows[name]['accuracy_std'] or 0):.1f}"
                  f" val {100 * rows[name]['val_accuracy_mean']:.1f}  params {c['trainable_params']}"
                  f"  step×lora {rows[name]['step_time_vs_peft_lora']:.2f} flags {flags}", flush=True)
        out[tname] = rows
        plot_means(rows, RESULTS / f"adapters_{tname}.png", f"{tname}: test accuracy vs trainable params")
        out[tname + "_claims"] = claims(rows)
        out[tname + "_settings"] = dict(vars(args), tasks=[tname], n_train_rows=task.n_train,
                                        n_validation_rows=task.n_validation, n_test_rows=task.n_test,
                                        task_description=task.description, torch_threads=1,
                                        wall_clock_s=time.time() - t0,
                                        accuracy="test accuracy, scored once per finished run; validation beside it; "
                                                 "nothing is chosen (fixed lr per method family)")
    prev = RESULTS / "adapters.json"
    if args.keep_other_tasks and prev.exists():  # results of other tasks from earlier invocations stay
        import json

        old = json.loads(prev.read_text())
        for t in old["run"].get("tasks", []):  # older files kept their settings in "run"
            old["results"].setdefault(f"{t}_settings", old["run"])
        out = {**old["results"], **out}
    write("adapters", {"settings_per_task": "see results[<task>_settings]"}, out)


def plot_means(rows: dict, path: Path, title: str) -> Path:
    """Accuracy (mean ± std over seeds) vs trainable params, log x, with the Pareto frontier over the means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((r["trainable_params"], 100 * r["accuracy_mean"], 100 * (r["accuracy_std"] or 0), n)
                 for n, r in rows.items())
    front, best = [], -1.0
    for p in pts:  # fewer params first: a point is on the frontier if it beats every cheaper one
        if p[1] > best:
            front.append(p)
            best = p[1]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o", color="#777",
                ecolor="#bbb", capsize=2, label="method (mean ± std over seeds)")
    ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="#c0392b", label="Pareto frontier")
    for x, y, _, n in pts:
        ax.annotate(n, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable params (incl. task head, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def claims(rows: dict) -> dict:
    """The papers' targets, checked on our numbers (test accuracy means; adapter params exclude the shared head)."""
    head = rows["head_only"]["trainable_params"] if "head_only" in rows else 0
    ref = rows.get("lora")
    c = {}
    for n in ("lora_xs", "nola"):
        if n in rows and ref:
            ratio = (rows[n]["trainable_params"] - head) / (ref["trainable_params"] - head)
            gap = 100 * (ref["accuracy_mean"] - rows[n]["accuracy_mean"])
            c[n] = {"adapter_params_vs_lora_r8": ratio, "accuracy_gap_points": gap,
                    "within_2_points_at_le_1_10_params": bool(gap <= 2 and ratio <= 0.1)}
    c["step_time_le_1.15x_peft_lora"] = {n: bool(r["step_time_vs_peft_lora"] <= 1.15) for n, r in rows.items()
                                         if r.get("step_time_vs_peft_lora") is not None}
    return c


if __name__ == "__main__":
    main()
