"""Compression benchmark: accuracy vs size and vs CPU latency for every compress method at several ratios, on
mnist1d-cnn (trained from scratch) and MiniLM fine-tuned on minilm-bbc (small subset).

Each model is trained once; every compression config starts from a deep copy of it. Latency is the median of
interleaved forward passes of the original and the compressed model (same batch, same process), reported as a
ratio. GMP and the ALBERT-style shared architecture change training, so they train their own models.

Accuracy is measured on validation and on test for every model. Everything that chooses uses validation: LASER's
(layer, rank) search (inside the method), and which settings meet the target (``targets``: Δ validation accuracy ≥
−1 pt); the test deltas of the chosen settings are reported beside them, never used to pick.

Usage: python benchmarks/compress.py [--models mnist1d,minilm] [--quick]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write  # noqa: E402

from leanfit.engine import registry  # noqa: E402
from leanfit.methods.compress.export import latency_side_by_side, measure  # noqa: E402
from leanfit.workflows.compress import train_or_load  # noqa: E402

CNN_RECIPE = {"task": {"name": "mnist1d-cnn"}, "adapter": "full", "optimizer": {"name": "adamw", "lr": 3e-3},
              "schedule": {"epochs": 12, "batch_size": 64}, "seed": 0}
FT_CNN = {"name": "finetune", "epochs": 4, "lr": 1e-3, "batch_size": 64}
FT_BERT = {"name": "finetune", "epochs": 1, "lr": 3e-5, "batch_size": 16}
CNN_STEPS = (
    [("magnitude", [{"name": "magnitude", "sparsity": s}]) for s in (0.5, 0.7, 0.9)]
    + [(f"structured-{imp}", [{"name": "structured", "ratio": r, "importance": imp}])
       for imp in ("magnitude", "taylor", "activation") for r in (0.2, 0.35, 0.5)]
    + [("structured-magnitude+ft", [{"name": "structured", "ratio": r}, FT_CNN]) for r in (0.2, 0.35, 0.5)]
    + [("structured-taylor+ft", [{"name": "structured", "ratio": r, "importance": "taylor"}, FT_CNN]) for r in (0.35, 0.5)]
    + [("svd", [{"name": "svd", "energy": e}]) for e in (0.6, 0.7, 0.8, 0.9)]
    + [("laser", [{"name": "laser", "rhos": [0.05, 0.1, 0.25, 0.5], "n_val": 512, "tolerance": 0.01}])]
    + [("int8", [{"name": "int8"}])]
    + [(m, [{"name": "gptq", "bits": b, "method": m, "n_calib": 256}]) for m in ("gptq", "rtn") for b in (8, 4, 3)]
    + [("structured+ft+int8", [{"name": "structured", "ratio": 0.35}, FT_CNN, {"name": "int8"}])]
    + [("svd+gptq4", [{"name": "svd", "energy": 0.8}, {"name": "gptq", "bits": 4, "n_calib": 256}])]
)
BERT_RECIPE = {"task": {"name": "minilm-bbc", "n_train": 320, "n_validation": 200, "n_test": 300, "max_length": 64},
               "adapter": "full",
               "optimizer": {"name": "adamw", "lr": 5e-5}, "schedule": {"epochs": 2, "batch_size": 16}, "seed": 0}
BERT_STEPS = (
    [("magnitude", [{"name": "magnitude", "sparsity": s}]) for s in (0.3, 0.5)]
    + [(f"structured-ffn-{imp}", [{"name": "structured", "target": "ffn", "ratio": r, "importance": imp, "n_calib": 64}])
       for imp in ("magnitude", "taylor") for r in (0.25, 0.5)]
    + [("structured-heads", [{"name": "structured", "target": "heads", "ratio": r, "n_calib": 64}]) for r in (0.25, 0.5)]
    + [("structured-ffn+ft", [{"name": "structured", "target": "ffn", "ratio": 0.5, "n_calib": 64}, FT_BERT])]
    + [("block_influence", [{"name": "block_influence", "n_remove": n, "n_calib": 64}]) for n in (1, 2, 3)]
    + [("svd", [{"name": "svd", "energy": e}]) for e in (0.9, 0.95)]
    + [("laser", [{"name": "laser", "rhos": [0.05, 0.25], "n_val": 96, "tolerance": 0.01,
                   "layers": ["output.dense"]}])]
    + [("int8", [{"name": "int8"}])]
    + [(m, [{"name": "gptq", "bits": b, "method": m, "n_calib": 64}]) for m in ("gptq", "rtn") for b in (8, 4)]
    + [(m + "+emb8", [{"name": "gptq", "bits": b, "method": m, "n_calib": 64, "embedding_bits": 8}])
       for m in ("gptq", "rtn") for b in (8, 4)]
    + [("block_influence+ft", [{"name": "block_influence", "n_remove": 2, "n_calib": 64}, FT_BERT])]
    + [("block_influence+int8", [{"name": "block_influence", "n_remove": 2, "n_calib": 64}, {"name": "int8"}])]
)


def finetune(task, model, epochs, lr, batch_size):
    """Recovery fine-tuning after structured pruning (not a registered method: plain AdamW on all weights)."""
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.trainer import Trainer

    for p in model.parameters():
        p.requires_grad_(True)
    Trainer(task, model, torch.optim.AdamW(model.parameters(), lr), Schedule(epochs=epochs, batch_size=batch_size)).fit()
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return {"method": "finetune", "epochs": epochs, "lr": lr}


def apply_steps(task, model, steps):
    reports = []
    for s in steps:
        kw = dict(s)
        name = kw.pop("name")
        if name == "finetune":
            reports.append(finetune(task, model, **kw))
            continue
        reports.append(dict(registry.get("compress", name).build(kw).compress(model, task)))
    return reports


def summary(rep: dict) -> dict:
    keep = ("method", "sparsity", "ranks", "bits", "layers", "removed", "params_after", "removed_fraction", "best",
            "total_error", "layers_factorized")
    return {k: rep[k] for k in keep if k in rep}


def row(label, steps, task, base, model, base_m, reports, rounds, bs):
    m = measure(task, model)
    ms = latency_side_by_side(task, {"original": base, "compressed": model}, bs, rounds)
    return {"method": label, "steps": steps, "reports": [summary(r) for r in reports], **m,
            "param_ratio": m["params"] / base_m["params"], "nonzero_ratio": m["nonzeros"] / base_m["nonzeros"],
            "file_ratio": m["file_bytes"] / base_m["file_bytes"], "latency_ratio": ms["compressed"] / ms["original"],
            "latency_ms": ms, "accuracy_delta": m["accuracy"] - base_m["accuracy"],  # validation
            "test_accuracy_delta": m["test_accuracy"] - base_m["test_accuracy"]}


def bench_model(key, recipe, steps, rounds, bs, extra_trainings):
    t0 = time.time()
    task, base, _ = train_or_load(recipe, None)
    base_m = measure(task, base)
    print(f"[{key}] base {base_m} ({time.time() - t0:.0f}s)", flush=True)
    rows = [{"method": "original", "steps": [], **base_m, "param_ratio": 1.0, "nonzero_ratio": 1.0, "file_ratio": 1.0,
             "latency_ratio": 1.0, "accuracy_delta": 0.0, "test_accuracy_delta": 0.0}]
    for label, st in steps:
        t1 = time.time()
        model = copy.deepcopy(base)
        try:
            reports = apply_steps(task, model, st)
            rows.append(row(label, st, task, base, model, base_m, reports, rounds, bs))
        except Exception as e:  # record, never hide
            rows.append({"method": label, "steps": st, "error": f"{type(e).__name__}: {e}"})
        r = rows[-1]
        print(f"[{key}] {label} {st[0]} val={r.get('accuracy')} test={r.get('test_accuracy')} params={r.get('param_ratio')} "
              f"file={r.get('file_ratio')} lat={r.get('latency_ratio')} {r.get('error', '')} ({time.time() - t1:.0f}s)",
              flush=True)
    for label, rec, st in extra_trainings:  # methods that change training (GMP) or the architecture (sharing)
        t1 = time.time()
        cbs = [registry.get("compress", s["name"]).build({k: v for k, v in s.items() if k != "name"}) for s in st]
        etask, emodel, state = train_or_load(rec, None, cbs)
        reports = list(state.compress_reports)
        rows.append(row(label, st, etask, base, emodel, base_m, reports, rounds, bs))
        print(f"[{key}] {label} acc={rows[-1]['accuracy']} params={rows[-1]['param_ratio']:.3f} "
              f"nz={rows[-1]['nonzero_ratio']:.3f} ({time.time() - t1:.0f}s)", flush=True)
    return {"recipe": recipe, "base": base_m, "rows": rows, "seconds": time.time() - t0}


def targets(res):
    """Which settings reach ≥50% fewer params (or non-zeros) or a 4× smaller file within 1 point — judged on
    VALIDATION accuracy (the choice); each chosen setting's test Δ is reported beside it."""
    out = {}
    for key, r in res.items():
        def hits(size_ok):
            return [{"method": x["method"], "steps": x["steps"], "val_delta": x["accuracy_delta"],
                     "test_delta": x["test_accuracy_delta"], "param_ratio": x["param_ratio"],
                     "file_ratio": x["file_ratio"], "nonzero_ratio": x["nonzero_ratio"]}
                    for x in r["rows"][1:] if "error" not in x and x["accuracy_delta"] >= -0.01 and size_ok(x)]
        out[key] = {"rule": "validation Δ ≥ −1 pt; test Δ reported",
                    "params_or_file_target_met_by": hits(lambda x: x["param_ratio"] <= 0.5 or x["file_ratio"] <= 0.25),
                    "nonzero_target_met_by": hits(lambda x: x["nonzero_ratio"] <= 0.5)}
    return out


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(res), 2, figsize=(13, 5 * len(res)), squeeze=False)
    for i, (key, r) in enumerate(res.items()):
        rows = [x for x in r["rows"] if "error" not in x]
        fams = sorted({x["method"] for x in rows})
        for j, (xk, xl) in enumerate((("file_ratio", "file size / original (safetensors)"),
                                      ("latency_ratio", "median CPU latency / original (interleaved)"))):
            ax = axes[i][j]
            for f in fams:
                pts = sorted((x[xk], x["test_accuracy"]) for x in rows if x["method"] == f)
                ax.plot(*zip(*pts), "o-", label=f, ms=4)
            ax.axhline(r["base"]["test_accuracy"] - 0.01, ls=":", c="gray", lw=1)
            ax.set_xlabel(xl), ax.set_ylabel("test accuracy"), ax.set_title(key)
            if j == 0:
                ax.set_xscale("log")
                ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mnist1d,minilm")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--fresh", action="store_true",
                    help="do not keep the other model's entry from an existing compress.json (e.g. an older protocol)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_path = RESULTS / "compress.json"
    res = {}
    if out_path.exists() and not args.fresh:  # keep the other model's results when re-running one
        import json

        res = json.loads(out_path.read_text()).get("results", {}).get("models", {})
    run = {"rounds": args.rounds, "latency_batch": 32, "threads": 1, "cnn_recipe": CNN_RECIPE, "bert_recipe": BERT_RECIPE,
           "models_run": args.models,
           "accuracy": "accuracy = validation, test_accuracy = test (both measured for every model); choices "
                       "(LASER rank, which settings meet the target) use validation only"}
    if "mnist1d" in args.models:
        gmp = [("gmp", {**CNN_RECIPE, "schedule": {**CNN_RECIPE["schedule"]}},
                [{"name": "gmp", "final_sparsity": s, "start_fraction": 0.1, "end_fraction": 0.7, "every": 20}])
               for s in (0.5, 0.7, 0.9)]
        albert = [(f"albert-shared-depth{d}", {**CNN_RECIPE, "task": {"name": "mnist1d-cnn", "depth": d, "share_layers": True}}, [])
                  for d in (2, 3)] + [("unshared-depth3", {**CNN_RECIPE, "task": {"name": "mnist1d-cnn", "depth": 3}}, [])]
        res["mnist1d-cnn"] = bench_model("mnist1d-cnn", CNN_RECIPE, CNN_STEPS, args.rounds, 32, gmp + albert)
        write("compress", run, {"models": res, "targets": targets(res)})
    if "minilm" in args.models:
        res["minilm-bbc"] = bench_model("minilm-bbc", BERT_RECIPE, BERT_STEPS, max(5, args.rounds // 2), 32, [])
        write("compress", run, {"models": res, "targets": targets(res)})
    plot(res, RESULTS / "compress.png")
    print(targets(res))


if __name__ == "__main__":
    main()
