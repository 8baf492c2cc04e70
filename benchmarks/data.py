"""Data-axis benchmark: accuracy vs kept fraction for every selector against RS2, plus an imbalanced variant.

    .venv/bin/python benchmarks/data.py            # → benchmarks/results/data.json + data.png (~10 min, 1 thread)
    .venv/bin/python benchmarks/data.py --quick    # 1 seed, fewer methods (smoke test)
    .venv/bin/python benchmarks/data.py --minilm-text   # only MiniLM on TREC-6/SST-2, merged into data.json (~22 min,
                                                        # 2 worker processes x 1 thread)

Regimes (Okanovic et al. 2305.18424 compare at both):
- equal samples seen: the same number of epochs over the kept rows, so a fraction f costs ≈ f of the steps;
- equal steps: as many steps as full-data training (epochs scaled by 1/f, capped by max_steps).
Scoring cost (proxy training + scoring passes) is included in each run's FLOPs and wall time, and also reported
separately, so "net saving" = cost of the run including scoring vs. the full-data run.

Imbalanced variant: mnist1d-cnn with classes 5–9 down-sampled 10× in train (validation and test stay balanced); we
report accuracy and mean accuracy (recall) on the minority classes.

Nothing in this benchmark chooses on held-out data (the selectors' proxies train and score on train rows; settings
are fixed up front). Every accuracy reported is TEST accuracy, scored once per finished run by ``run_recipe``; the
final validation accuracy is stored beside it (``val_accuracy``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write  # noqa: E402

from leanfit.engine.recipe import Recipe  # noqa: E402
from leanfit.engine.task import Task, build_task  # noqa: E402
from leanfit.engine.run import run_recipe  # noqa: E402

SELECTORS = {  # name in the table → data spec (without fraction)
    "random": {"name": "random"},
    "rs2": {"name": "rs2"},
    "el2n": {"name": "el2n", "score_epochs": 2, "proxy_lr": 1e-2},
    "el2n+ccs": {"name": "el2n", "score_epochs": 2, "ccs": True, "hard_cut": 0.05, "proxy_lr": 1e-2},
    "grand": {"name": "grand", "score_epochs": 2, "proxy_lr": 1e-2},
    "forgetting": {"name": "forgetting", "score_epochs": 4, "proxy_lr": 1e-2},
    "loss_filter(medium)": {"name": "loss_filter", "band": "medium", "proxy_lr": 1e-2},
    "color_filter": {"name": "color_filter", "proxy_lr": 1e-2},
    "s2l": {"name": "s2l", "proxy_epochs": 3, "clusters": 20, "proxy_lr": 1e-2},
}
IMBALANCE = {
    "none": None,
    "upsample(T=5)": {"name": "upsample", "temperature": 5.0},
    "upweight(T=5)": {"name": "upweight", "temperature": 5.0},
    "cooldown(10→1)": {"name": "cooldown", "t_start": 10.0, "t_end": 1.0, "hold": 0.5},
    "class_balanced": {"name": "class_balanced", "beta": 0.999},
    "random_oversample": {"name": "random_oversample"},
    "random_undersample": {"name": "random_undersample"},
    "smote": {"name": "smote"},
    "momentum_difficulty": {"name": "momentum_difficulty"},
}
MINORITY = (5, 6, 7, 8, 9)


def imbalanced(task: Task, factor: int = 10, seed: int = 0) -> Task:
    """The same task with the minority classes' train rows down-sampled ``factor``× (validation and test unchanged)."""
    y = task.train["labels"]
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in y.unique().tolist():
        rows = (y == c).nonzero().flatten()
        if c in MINORITY:
            rows = rows[torch.randperm(len(rows), generator=g)[: max(1, len(rows) // factor)]]
        keep.append(rows)
    keep = torch.cat(keep).sort().values
    return dataclasses.replace(task, name=task.name + "-imb10", train={k: v[keep] for k, v in task.train.items()},
                               description=task.description + ", minority classes 5-9 down-sampled 10x")


def run_one(task: Task, data: dict | None, epochs: int, max_steps: int | None, seed: int, lr: float, bs: int,
            per_class: bool = False, task_name: str = "mnist1d-cnn", adapter: str = "full") -> dict:
    d = {"task": task_name, "adapter": adapter, "optimizer": {"name": "adamw", "lr": lr},
         "schedule": {"epochs": epochs, "batch_size": bs, "lr_schedule": "cosine", "max_steps": max_steps,
                      "eval_every": 10 ** 7},
         "seed": seed}
    if data:
        d["data"] = data
    r = run_recipe(Recipe.from_dict(d), task=task)
    sc = r.extra.get("data_scoring", {})
    out = {"accuracy": r.test_metrics["accuracy"], "val_accuracy": r.metrics["accuracy"], "flags": r.flags,
           "steps": r.costs["steps"], "samples": r.costs["samples_seen"],
           "train_flops": r.costs["train_flops"], "wall_time_s": r.costs["wall_time_s"],
           "scoring_flops": sc.get("flops", 0.0), "scoring_wall_s": sc.get("wall_time_s", 0.0), "status": r.status}
    if per_class:  # per-class accuracy on test = per-class recall
        pc = r.diagnostics["test"]["per_class"]
        out["per_class"] = {int(c): v["recall"] for c, v in pc.items()}
        out["minority_accuracy"] = statistics.mean(out["per_class"][c] for c in MINORITY)
    return out


def summarise(rows: list[dict], keys: tuple[str, ...], metrics: tuple[str, ...]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for k, rs in groups.items():
        s = dict(zip(keys, k))
        s["n_seeds"] = len(rs)
        s["flagged_runs"] = sum(bool(r.get("flags")) for r in rs)  # collapsed / at the majority baseline
        for m in metrics:
            v = [r[m] for r in rs]
            s[m + "_mean"] = statistics.mean(v)
            s[m + "_std"] = statistics.stdev(v) if len(v) > 1 else 0.0
            if m in ("wall_time_s", "scoring_wall_s"):
                s[m + "_median"] = statistics.median(v)
        out.append(s)
    return out


def add_full_ratios(summary: list[dict]) -> list[dict]:
    """Per summary row: its FLOPs and its scoring FLOPs as a share of the same regime's full-data run."""
    full = {s["regime"]: s for s in summary if s["method"] == "full"}
    for s in summary:
        f = full.get(s["regime"])
        if f:
            s["flops_ratio_vs_full"] = s["train_flops_mean"] / f["train_flops_mean"]
            s["scoring_share_of_full_run"] = s["scoring_flops_mean"] / f["train_flops_mean"]
    return summary


def compare_to_rs2(summary: list[dict]) -> list[dict]:
    """Each selector vs RS2 at the same regime and fraction (accuracy gap, cost ratios, scoring share)."""
    by = {(s["regime"], s["method"], s["fraction"]): s for s in summary}
    vs_rs2 = []
    for (regime, method, f), s in by.items():
        ref = by.get((regime, "rs2", f))
        if ref is None or method in ("rs2", "full"):
            continue
        full = by[(regime, "full", 1.0)]
        vs_rs2.append({"regime": regime, "method": method, "fraction": f,
                       "accuracy_minus_rs2": s["accuracy_mean"] - ref["accuracy_mean"],
                       "rs2_std": ref["accuracy_std"], "method_std": s["accuracy_std"],
                       "beats_rs2": s["accuracy_mean"] - ref["accuracy_mean"] > max(s["accuracy_std"], ref["accuracy_std"]),
                       "flops_ratio_vs_rs2": s["train_flops_mean"] / ref["train_flops_mean"],
                       "wall_ratio_vs_rs2": s["wall_time_s_median"] / ref["wall_time_s_median"],
                       "scoring_share_of_flops": s["scoring_flops_mean"] / s["train_flops_mean"],
                       "flops_ratio_vs_full": s["train_flops_mean"] / full["train_flops_mean"],
                       "wall_ratio_vs_full": s["wall_time_s_median"] / full["wall_time_s_median"]})
    return vs_rs2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minilm", action="store_true", help="add the MiniLM section to an existing data.json")
    ap.add_argument("--minilm-text", action="store_true",
                    help="run only MiniLM on TREC-6/SST-2 (both regimes) and merge it into data.json")
    ap.add_argument("--tasks", default=",".join(TEXT_TASKS), help="with --minilm-text: comma-separated task names")
    ap.add_argument("--jobs", type=int, default=2, help="with --minilm-text: worker processes (1 thread each)")
    ap.add_argument("--plot", action="store_true", help="redraw data.png from data.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.minilm:
        return minilm()
    if args.minilm_text:
        return minilm_text(args.tasks.split(","), args.jobs, args.quick)
    if args.plot:  # redraw the PNG from the stored JSON
        import json

        d = json.loads((RESULTS / "data.json").read_text())["results"]
        if d.get("minilm_text"):
            plot_text(d["minilm_text"], RESULTS / "data_minilm_text.png")
        return plot(d["balanced"]["summary"], d["imbalanced"]["summary"], RESULTS / "data.png", d.get("minilm"))
    seeds = [0] if args.quick else [0, 1, 2]
    fractions = [0.1, 0.3, 0.5] if not args.quick else [0.3]
    epochs, bs, lr = 15, 64, 1e-2
    selectors = SELECTORS if not args.quick else {k: SELECTORS[k] for k in ("rs2", "el2n", "s2l")}
    base = build_task("mnist1d-cnn")
    full_steps = epochs * math.ceil(base.n_train / bs)
    t0 = time.time()
    rows: list[dict] = []
    for seed in seeds:
        r = run_one(base, None, epochs, None, seed, lr, bs)
        for regime in ("equal_samples", "equal_steps"):
            rows.append({"regime": regime, "method": "full", "fraction": 1.0, "seed": seed, **r})
        for name, spec in selectors.items():
            for f in fractions:
                data = {**spec, "fraction": f}
                rows.append({"regime": "equal_samples", "method": name, "fraction": f, "seed": seed,
                             **run_one(base, data, epochs, None, seed, lr, bs)})
                rows.append({"regime": "equal_steps", "method": name, "fraction": f, "seed": seed,
                             **run_one(base, data, math.ceil(epochs / f), full_steps, seed, lr, bs)})
        print(f"seed {seed} done, {time.time() - t0:.0f}s", flush=True)
    metrics = ("accuracy", "val_accuracy", "steps", "samples", "train_flops", "wall_time_s", "scoring_flops",
               "scoring_wall_s")
    summary = add_full_ratios(summarise(rows, ("regime", "method", "fraction"), metrics))

    vs_rs2 = compare_to_rs2(summary)
    print(f"balanced grid done, {time.time() - t0:.0f}s", flush=True)

    # ---- imbalanced variant -------------------------------------------------------------------------------
    imb = imbalanced(base)
    imb_rows = []
    methods = IMBALANCE if not args.quick else {k: IMBALANCE[k] for k in ("none", "upsample(T=5)", "smote")}
    for seed in seeds:
        for name, spec in methods.items():
            imb_rows.append({"method": name, "seed": seed, **run_one(imb, spec, epochs, None, seed, lr, bs, True)})
    imb_summary = summarise(imb_rows, ("method",), ("accuracy", "val_accuracy", "minority_accuracy", "steps", "train_flops",
                                                     "wall_time_s"))
    print(f"imbalanced done, {time.time() - t0:.0f}s", flush=True)

    run = {"task": "mnist1d-cnn", "n_train": base.n_train, "n_validation": base.n_validation, "n_test": base.n_test,
           "accuracy": "test, scored once per finished run; nothing chooses on validation or test",
           "epochs": epochs, "batch_size": bs,
           "optimizer": "adamw", "lr": lr, "lr_schedule": "cosine", "seeds": seeds, "fractions": fractions,
           "full_steps": full_steps, "selectors": selectors, "imbalance_methods": methods,
           "imbalanced_task": {"minority_classes": MINORITY, "factor": 10, "n_train": imb.n_train},
           "threads": 1, "total_wall_s": time.time() - t0,
           "beats_rs2_rule": "mean accuracy above RS2's by more than the larger of the two std over seeds",
           "not_run": "minilm-bbc (MiniLM-L6 on 2 shared CPU cores: one grid cell takes minutes; out of time)"}
    results = {"balanced": {"rows": rows, "summary": summary, "vs_rs2": vs_rs2},
               "imbalanced": {"rows": imb_rows, "summary": imb_summary}}
    name = "data" if not args.quick else "data_quick"
    p = write(name, run, results)
    plot(summary, imb_summary, RESULTS / f"{name}.png")
    print(p)


MINILM_SELECTORS = {k: SELECTORS[k] for k in ("random", "rs2", "el2n", "loss_filter(medium)", "s2l")}
MINILM_BBC = {"n_train": 400, "n_validation": 100, "n_test": 400, "max_length": 48}


def minilm() -> None:
    """Small MiniLM run: minilm-bbc (400 train / 100 validation / 400 test, 48 tokens), head-only fine-tuning (the
    frozen encoder's output is cached once per run), equal samples seen only, proxies use the same head-only setup."""
    import json

    t0 = time.time()
    task = build_task("minilm-bbc", **MINILM_BBC)
    seeds, fractions, epochs, bs, lr = [0, 1, 2], [0.1, 0.3, 0.5], 3, 32, 1e-2
    rows = []
    for seed in seeds:
        r = run_one(task, None, epochs, None, seed, lr, bs, task_name="minilm-bbc", adapter="head_only")
        rows.append({"regime": "equal_samples", "method": "full", "fraction": 1.0, "seed": seed, **r})
        for name, spec in MINILM_SELECTORS.items():
            if "score_epochs" in spec:
                spec = {**spec, "score_epochs": 1}
            if name == "s2l":
                spec = {**spec, "proxy_epochs": 2}
            if name.startswith("loss_filter"):
                spec = {**spec, "ref_epochs": 2}
            for f in fractions:
                rows.append({"regime": "equal_samples", "method": name, "fraction": f, "seed": seed,
                             **run_one(task, {**spec, "fraction": f}, epochs, None, seed, lr, bs,
                                       task_name="minilm-bbc", adapter="head_only")})
        print(f"minilm seed {seed} done, {time.time() - t0:.0f}s", flush=True)
    metrics = ("accuracy", "val_accuracy", "steps", "samples", "train_flops", "wall_time_s", "scoring_flops",
               "scoring_wall_s")
    summary = add_full_ratios(summarise(rows, ("regime", "method", "fraction"), metrics))
    p = RESULTS / "data.json"
    d = json.loads(p.read_text())
    d["results"]["minilm"] = {"rows": rows, "summary": summary}
    d["run"]["minilm"] = {"task": "minilm-bbc", "n_train": task.n_train, "n_validation": task.n_validation,
                          "n_test": task.n_test, "max_length": 48,
                          "adapter": "head_only", "epochs": epochs, "batch_size": bs, "lr": lr, "seeds": seeds,
                          "fractions": fractions, "regime": "equal_samples", "wall_s": time.time() - t0,
                          "proxy": "score_epochs 1 (el2n), ref_epochs 2 (loss_filter), proxy_epochs 2 (s2l), lr 1e-2"}
    d["run"]["not_run"] = "minilm-bbc at equal steps and with the other selectors (time on 2 shared CPU cores)"
    p.write_text(json.dumps(d, indent=2, default=str))
    print(p)


# ---- MiniLM on TREC-6 / SST-2 (from ../shared/data), both regimes ----------------------------------------------
# The BBC protocol above (head-only MiniLM, AdamW lr 1e-2, 3 epochs, batch 32, same short proxies), run at equal
# samples *and* equal steps. Sizes keep the grid short on 2 cores: 400 train rows as for BBC, 100 validation and
# 300 test rows,
# TREC questions padded to 32 tokens (99% fit), SST-2 sentences to 40 (90% fit; the rest are cut).
TEXT_TASKS = {"minilm-trec": {"n_train": 400, "n_validation": 100, "n_test": 300, "max_length": 32},
              "minilm-sst2": {"n_train": 400, "n_validation": 100, "n_test": 300, "max_length": 40}}
TEXT_SELECTORS = {"rs2": SELECTORS["rs2"], "random": SELECTORS["random"],
                  "s2l": {**SELECTORS["s2l"], "proxy_epochs": 2},
                  "el2n": {**SELECTORS["el2n"], "score_epochs": 1},
                  "loss_filter(medium)": {**SELECTORS["loss_filter(medium)"], "ref_epochs": 2}}
TEXT_HP = {"epochs": 3, "batch_size": 32, "lr": 1e-2, "seeds": [0, 1, 2], "fractions": [0.1, 0.3, 0.5]}


class reuse_scores:
    """Within one (task, seed, selector) unit, compute a static selector's scores once and reuse them for the other
    fractions and the other regime. Scores do not depend on the fraction or the training length, so the kept rows
    are exactly those of a fresh computation. Every run is still charged the full measured scoring cost: the
    scoring FLOPs are added to its train FLOPs here and ``run_text_unit`` adds the scoring wall time to its wall
    time. The global RNG (dropout) is restored after scoring, so every run of a seed trains with the same dropout
    stream whether its scores were computed or reused."""

    def __init__(self) -> None:
        from leanfit.methods.data.el2n_grand import _ScoreSelector
        from leanfit.methods.data.reference_loss import LossFilter
        from leanfit.methods.data.s2l import S2L

        self.targets = [(_ScoreSelector, "scores"), (LossFilter, "scores"), (S2L, "trajectories")]
        self.cache: dict[tuple, tuple[torch.Tensor, dict]] = {}
        self.originals: list = []
        self.hits = 0

    def _wrap(self, fn):
        cache, me = self.cache, self

        def wrapped(sel, state):
            key = (type(sel).__name__, repr(dataclasses.replace(sel.config, fraction=1.0)), state.seed,
                   state.task.name, state.task.n_train)
            if key not in cache:
                rng = torch.get_rng_state()
                out = fn(sel, state)
                torch.set_rng_state(rng)
                cache[key] = (out.clone(), dict(state.data_report["scoring"]))
                return out
            out, cost = cache[key]
            me.hits += 1
            state.flops += cost["flops"]
            state.data_report["scoring"] = {**cost, "reused": True}
            return out.clone()

        return wrapped

    def __enter__(self) -> "reuse_scores":
        for cls, attr in self.targets:
            fn = cls.__dict__[attr]
            self.originals.append((cls, attr, fn))
            setattr(cls, attr, self._wrap(fn))
        return self

    def __exit__(self, *exc) -> None:
        for cls, attr, fn in self.originals:
            setattr(cls, attr, fn)
        self.originals.clear()


_TEXT_TASK_CACHE: dict[str, Task] = {}


def run_text_unit(unit: tuple[str, int, str, dict, dict]) -> list[dict]:
    """One worker job: ``method`` on ``task`` for one seed, every fraction in both regimes ("full": one run that
    serves both regimes). Runs in a worker process with 1 thread."""
    task_name, seed, method, sizes, hp = unit
    torch.set_num_threads(1)
    key = f"{task_name}:{sorted(sizes.items())}"
    if key not in _TEXT_TASK_CACHE:
        _TEXT_TASK_CACHE[key] = build_task(task_name, **sizes)
    task = _TEXT_TASK_CACHE[key]
    epochs, bs, lr = hp["epochs"], hp["batch_size"], hp["lr"]
    full_steps = epochs * math.ceil(task.n_train / bs)
    kw = {"task_name": task_name, "adapter": "head_only"}
    rows = []
    if method == "full":
        r = run_one(task, None, epochs, None, seed, lr, bs, **kw)
        return [{"task": task_name, "regime": regime, "method": "full", "fraction": 1.0, "seed": seed, **r,
                 "scoring_reused": False} for regime in ("equal_samples", "equal_steps")]
    with reuse_scores() as reuse:
        for f in hp["fractions"]:
            data = {**TEXT_SELECTORS[method], "fraction": f}
            for regime, ep, cap in (("equal_samples", epochs, None), ("equal_steps", math.ceil(epochs / f), full_steps)):
                t0, hits = time.perf_counter(), reuse.hits
                r = run_one(task, data, ep, cap, seed, lr, bs, **kw)
                reused = reuse.hits > hits
                if reused:  # charge the scoring time this run skipped (its FLOPs are already in train_flops)
                    r["wall_time_s"] += r["scoring_wall_s"]
                rows.append({"task": task_name, "regime": regime, "method": method, "fraction": f, "seed": seed, **r,
                             "scoring_reused": reused, "run_s": time.perf_counter() - t0})
    return rows


def iso_flops_vs_rs2(summary: list[dict]) -> list[dict]:
    """Net of scoring cost, at equal samples: each selector's accuracy vs RS2's accuracy at the same total FLOPs
    (scoring included), read off RS2's measured curve (its fractions + the full run) by linear interpolation in
    FLOPs. Beyond the full run's FLOPs the full-data accuracy is used (RS2 at 100% is full data)."""
    es = [s for s in summary if s["regime"] == "equal_samples"]
    pts = sorted((s["train_flops_mean"], s["accuracy_mean"]) for s in es if s["method"] in ("rs2", "full"))
    out = []
    for s in es:
        if s["method"] in ("rs2", "full"):
            continue
        c = s["train_flops_mean"]
        if c >= pts[-1][0]:
            ref, where = pts[-1][1], "full data (cheaper than the selector)"
        elif c <= pts[0][0]:
            ref, where = pts[0][1], "rs2 at the smallest fraction"
        else:
            (x0, y0), (x1, y1) = next((a, b) for a, b in zip(pts, pts[1:]) if a[0] <= c <= b[0])
            ref, where = y0 + (y1 - y0) * (c - x0) / (x1 - x0), "interpolated"
        out.append({"method": s["method"], "fraction": s["fraction"], "flops_ratio_vs_full": c / pts[-1][0],
                    "accuracy": s["accuracy_mean"], "accuracy_std": s["accuracy_std"],
                    "rs2_accuracy_at_same_flops": ref, "rs2_reference": where,
                    "net_accuracy_minus_rs2": s["accuracy_mean"] - ref})
    return out


def minilm_text(tasks: list[str], jobs: int, quick: bool = False) -> None:
    """MiniLM on TREC-6 / SST-2: every selector of TEXT_SELECTORS at both regimes, 3 seeds; each task is merged
    into data.json (results.minilm_text[task], run.minilm_text) as soon as it is done. --quick: 1 seed, 0.3 only,
    rs2 + el2n, 120 rows, nothing written."""
    import multiprocessing as mp

    from leanfit.tasks.text import shared_data_dir

    if shared_data_dir() is None:
        sys.exit("minilm-trec / minilm-sst2 need ../shared/data (or LEANFIT_SHARED_DATA); nothing run.")
    unknown = [t for t in tasks if t not in TEXT_TASKS]
    if unknown:
        sys.exit(f"--tasks must be among {list(TEXT_TASKS)}, but got {unknown}")
    if quick:
        TEXT_HP.update(seeds=[0], fractions=[0.3])
    methods = ["s2l", "el2n", "loss_filter(medium)", "rs2", "random", "full"] if not quick else ["el2n", "rs2", "full"]
    sizes = {t: (TEXT_TASKS[t] if not quick else {**TEXT_TASKS[t], "n_train": 120, "n_test": 60}) for t in tasks}
    # task by task (TREC first); within a task the costliest units first so the 2 workers finish together
    units = [(t, seed, m, sizes[t], TEXT_HP) for t in tasks for m in methods for seed in TEXT_HP["seeds"]]
    t0 = time.time()
    done: dict[str, list[dict]] = {t: [] for t in tasks}
    expected = {t: sum(1 for u in units if u[0] == t) for t in tasks}
    counted: dict[str, int] = {t: 0 for t in tasks}
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs) as pool:
        for rows in pool.imap_unordered(run_text_unit, units):
            t = rows[0]["task"]
            done[t] += rows
            counted[t] += 1
            print(f"{t} {rows[0]['method']} seed {rows[0]['seed']} done ({counted[t]}/{expected[t]}), "
                  f"{time.time() - t0:.0f}s", flush=True)
            if counted[t] == expected[t]:
                _write_text_task(t, done[t], sizes[t], time.time() - t0, jobs, quick)
    print(f"all done, {time.time() - t0:.0f}s", flush=True)


def _write_text_task(task_name: str, rows: list[dict], sizes: dict, elapsed: float, jobs: int, quick: bool) -> None:
    import json

    order = {m: i for i, m in enumerate(["full", *TEXT_SELECTORS])}
    rows = sorted(rows, key=lambda r: (r["seed"], order[r["method"]], r["fraction"], r["regime"]))
    metrics = ("accuracy", "val_accuracy", "steps", "samples", "train_flops", "wall_time_s", "scoring_flops",
               "scoring_wall_s")
    summary = add_full_ratios(summarise(rows, ("regime", "method", "fraction"), metrics))
    res = {"rows": rows, "summary": summary, "vs_rs2": compare_to_rs2(summary), "iso_flops_vs_rs2": iso_flops_vs_rs2(summary)}
    if quick:
        for s in summary:
            print({k: s[k] for k in ("regime", "method", "fraction", "accuracy_mean", "train_flops_mean",
                                     "scoring_flops_mean", "wall_time_s_mean")})
        return
    p = RESULTS / "data.json"
    d = json.loads(p.read_text())
    d["results"].setdefault("minilm_text", {})[task_name] = res
    run = d["run"].setdefault("minilm_text", {})
    run.update({"adapter": "head_only", "optimizer": "adamw", "lr_schedule": "cosine", **TEXT_HP,
                "full_steps": TEXT_HP["epochs"] * math.ceil(sizes["n_train"] / TEXT_HP["batch_size"]),
                "selectors": TEXT_SELECTORS, "threads_per_worker": 1, "workers": jobs,
                "proxy": "score_epochs 1 (el2n), ref_epochs 2 on 30% (loss_filter), proxy_epochs 2 (s2l), lr 1e-2",
                "regimes": {"equal_samples": "3 epochs over the kept rows",
                            "equal_steps": "ceil(3/f) epochs over the kept rows, capped at full_steps"},
                "scores_reused": "a static selector's scores are computed once per (task, seed, selector) and reused "
                                 "for its other fractions and regime; every run is charged the measured scoring "
                                 "FLOPs and wall time (wall_time_s includes scoring_wall_s)",
                "wall_time_note": f"{jobs} worker processes x 1 thread ran side by side on 2 cores",
                "beats_rs2_rule": "mean accuracy above RS2's by more than the larger of the two std over seeds",
                "net_rule": "iso_flops_vs_rs2: equal samples, accuracy minus RS2's accuracy at the same total FLOPs "
                            "(scoring included), linear interpolation on RS2's fractions + the full run",
                "not_run": "grand, forgetting, el2n+ccs, color_filter (time); full TREC/SST-2 train sets, all test "
                           "rows and full-length SST-2 sentences (time)",
                "accuracy": "test (TREC: its test set minus the 11 questions also in train; SST-2: its test set), "
                            "scored once per finished run; nothing chooses on validation or test"})
    # finished_after_s: time since this --minilm-text invocation started (tasks run one after the other)
    run.setdefault("tasks", {})[task_name] = {**sizes, "finished_after_s": elapsed,
                                              "n_runs": len(rows) - len(TEXT_HP["seeds"])}
    p.write_text(json.dumps(d, indent=2, default=str))
    plot_text(d["results"]["minilm_text"], RESULTS / "data_minilm_text.png")
    print(p, flush=True)


def plot_text(per_task: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(per_task), 2, figsize=(11.2, 5 * len(per_task)), squeeze=False)
    for i, (t, res) in enumerate(per_task.items()):
        _lines(axes[i][0], res["summary"], "equal_samples", f"{t} (head-only), equal samples seen")
        _lines(axes[i][1], res["summary"], "equal_steps", f"{t} (head-only), equal steps")
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _lines(ax, summary: list[dict], regime: str, title: str) -> None:
    methods = sorted({s["method"] for s in summary if s["method"] != "full" and s["regime"] == regime})
    full = next(s for s in summary if s["regime"] == regime and s["method"] == "full")
    for m in methods:
        pts = sorted((s["fraction"], s["accuracy_mean"], s["accuracy_std"]) for s in summary
                     if s["regime"] == regime and s["method"] == m)
        fx, mu, sd = zip(*pts)
        ax.errorbar(fx, mu, yerr=sd, marker="o", capsize=3, label=m, lw=3 if m == "rs2" else 1.2,
                    color="k" if m == "rs2" else None)
    ax.errorbar([1.0], [full["accuracy_mean"]], yerr=[full["accuracy_std"]], marker="*", ms=12, color="k", ls="",
                label="full data (100%)")
    ax.set(title=title, xlabel="kept fraction per epoch", ylabel="accuracy", xticks=[0.1, 0.3, 0.5, 1.0])
    ax.grid(alpha=0.3)


def plot(summary: list[dict], imb_summary: list[dict], path: Path, minilm: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 4 if minilm else 3
    fig, axes = plt.subplots(1, n, figsize=(5.6 * n, 5))
    _lines(axes[0], summary, "equal_samples", "mnist1d-cnn, equal samples seen")
    _lines(axes[1], summary, "equal_steps", "mnist1d-cnn, equal steps")
    axes[0].legend(fontsize=7)
    ax = axes[2]
    names = [s["method"] for s in imb_summary]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [s["accuracy_mean"] for s in imb_summary], 0.4,
           yerr=[s["accuracy_std"] for s in imb_summary], label="accuracy")
    ax.bar([i + 0.2 for i in x], [s["minority_accuracy_mean"] for s in imb_summary], 0.4,
           yerr=[s["minority_accuracy_std"] for s in imb_summary], label="minority-class accuracy")
    ax.set_xticks(list(x), names, rotation=45, ha="right", fontsize=8)
    ax.set(title="imbalanced mnist1d-cnn (classes 5-9 ÷10)", ylabel="accuracy")
    ax.legend(fontsize=8)
    if minilm:
        _lines(axes[3], minilm["summary"], "equal_samples", "minilm-bbc (400 rows, head-only), equal samples")
        axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
