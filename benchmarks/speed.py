"""Issue 17's speed table: leanfit vs Hugging Face Trainer + peft, and leanfit's fast paths vs its slow ones, measured
side by side in one run (interleaved rounds, medians; one torch thread everywhere — the box is shared and noisy).

Rows (docs/speed.md says what each measures):
  first_step   process start → end of the first optimizer step, `leanfit run` vs benchmarks/hf_baseline.py (fresh
               processes; a global optimizer-step hook installed before either starts writes the time), + peak RSS
  padding      short texts (TREC questions as a text-file task): padding max_length vs longest vs longest+grouped
  frozen       head-only, frozen_prefix cache vs eval: per-epoch train time after the first, metrics
  step_time    LoRA step time vs HF Trainer + peft (DataCollatorWithPadding) on the same batches, in one process
  config_error `leanfit run bad.yaml` wall time in a fresh process
  lr_find      `leanfit lr-find --steps 40` vs `leanfit run` of the same recipe with max_steps 40 (fresh processes)

Usage: python benchmarks/speed.py [--only first_step,padding,...] [--rounds N]
       python benchmarks/speed.py --render   (rewrite docs/speed.md's table from results/speed.json)
Results of a partial run (--only) are merged into results/speed.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, median, write  # noqa: E402

THREADS = 1
REF_TORCH = "import_torch_reference"
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "speed.md"
BEGIN, END = "<!-- speed-table:begin -->", "<!-- speed-table:end -->"
SHARED = Path(os.environ.get("LEANFIT_SHARED_DATA", "/work/shared/data"))
WORK = Path(tempfile.gettempdir()) / "leanfit-speed"
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT), "LEANFIT_CACHE": str(WORK / "cache")}
# Installed before either tool starts: the first optimizer step on real nn.Parameters writes time.time() to
# $SPEED_MARK (leanfit's FLOP meter steps a shadow optimizer over plain-tensor clones; that one is ignored).
PRELUDE = """
import os, sys, time, runpy
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
_done = []
def _mark(opt, args, kwargs):
    if not _done and isinstance(opt.param_groups[0]["params"][0], torch.nn.Parameter):
        _done.append(1)
        open(os.environ["SPEED_MARK"], "w").write(repr(time.time()))
register_optimizer_step_post_hook(_mark)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    sys.argv[0] = target
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


# ---- data and recipes -----------------------------------------------------------------------------------------
def read_tsv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f, delimiter="\t")]


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def make_data() -> dict[str, dict[str, str]]:
    """Short-text sets from TREC-6 (questions: median 13 tokens, max ~40 under max_length 64): disjoint
    train / validation rows from TREC train (deduplicated, seeded shuffle), test = TREC test."""
    WORK.mkdir(parents=True, exist_ok=True)
    seen, rows = set(), []
    for t, y in read_tsv(SHARED / "trec" / "train.tsv"):
        if t not in seen:
            seen.add(t), rows.append((t, y))
    random.Random(0).shuffle(rows)
    test = [r for r in read_tsv(SHARED / "trec" / "test.tsv") if r[0] not in seen]
    val, train = rows[:400], rows[400:]
    return {
        "small": {"train": write_tsv(WORK / "small_train.tsv", train[:320]),
                  "validation": write_tsv(WORK / "small_val.tsv", val[:64]),
                  "test": write_tsv(WORK / "small_test.tsv", test[:64])},
        "short": {"train": write_tsv(WORK / "short_train.tsv", train[:800]),
                  "validation": write_tsv(WORK / "short_val.tsv", val),
                  "test": write_tsv(WORK / "short_test.tsv", test)},
    }


def recipe(files: dict[str, str], adapter: Any = None, lr: float = 5e-3, padding: str | None = None,
           **schedule: Any) -> dict[str, Any]:
    task = {"name": "text-file", **files, "max_length": 64}
    if padding:
        task["padding"] = padding
    return {"task": task, "adapter": adapter or {"name": "lora", "r": 8},
            "optimizer": {"name": "adamw", "lr": lr}, "schedule": {"epochs": 1, "batch_size": 16, **schedule},
            "seed": 0}


def write_yaml(name: str, d: dict[str, Any]) -> Path:
    import yaml

    p = WORK / name
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def spawn(args: list[str], mark: bool = False, pythonpath: str | None = None) -> dict[str, Any]:
    """A fresh `python [PRELUDE] args` process: wall seconds, time to the first-step mark, peak RSS (its own)."""
    log = WORK / "child.log"
    env = dict(ENV) if pythonpath is None else {**ENV, "PYTHONPATH": pythonpath}
    run = args if args[0].endswith(".py") or args[0].startswith("-") else ["-m"] + args
    cmd = [sys.executable] + (["-c", PRELUDE] + args if mark else run)
    if mark:
        env["SPEED_MARK"] = str(WORK / "mark")
        Path(env["SPEED_MARK"]).unlink(missing_ok=True)
    with open(log, "w") as out:
        t_wall, t0 = time.time(), time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=WORK)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    res = {"wall_s": wall, "rc": p.returncode, "peak_rss_mib": ru.ru_maxrss / 1024, "log": log.read_text()[-2000:]}
    if mark:
        m = Path(env["SPEED_MARK"])
        res["first_step_s"] = float(m.read_text()) - t_wall if m.exists() else float("nan")
    return res


def cli(*args: str) -> list[str]:
    return ["leanfit.cli", *args]  # `python -m leanfit.cli`: the worktree's leanfit (the console script is /work/main's)


# ---- 1. time to first step and peak RSS ---------------------------------------------------------------------
def first_step(data: dict, rounds: int) -> dict[str, Any]:
    from leanfit.tasks.text import minilm_dir

    files = data["small"]
    steps = 8
    rp = write_yaml("first_step.yaml", recipe(files, max_steps=steps))
    hf = [str(ROOT / "benchmarks" / "hf_baseline.py"), str(minilm_dir()), files["train"], files["validation"],
          files["test"], "--batch-size", "16", "--max-steps", str(steps)]
    lf = cli("run", str(rp), "--storage", f"sqlite:///{WORK / 'runs.db'}")
    runs: dict[str, list[dict]] = {"leanfit": [], "hf": []}
    for r in range(rounds + 1):  # round 0 warms the OS file cache and leanfit's token cache; not recorded
        for which in (("leanfit", "hf") if r % 2 == 0 else ("hf", "leanfit")):
            res = spawn(lf if which == "leanfit" else hf, mark=True)
            if res["rc"] != 0:
                raise RuntimeError(f"{which} failed:\n{res['log']}")
            print(f"first_step round {r} {which}: first step {res['first_step_s']:.2f} s, wall {res['wall_s']:.2f} s, "
                  f"peak RSS {res['peak_rss_mib']:.0f} MiB", flush=True)
            if r:
                runs[which].append({k: v for k, v in res.items() if k != "log"})
    med = {w: {k: median([x[k] for x in runs[w]]) for k in ("first_step_s", "wall_s", "peak_rss_mib")} for w in runs}
    ratios = [a["first_step_s"] / b["first_step_s"] for a, b in zip(runs["leanfit"], runs["hf"])]
    return {"what": f"fresh process start → end of first optimizer step; LoRA r8, batch 16, {steps} steps, 320 "
                    "train / 64 validation / 64 test TREC rows, then validation+test scored",
            "rounds": rounds, "steps": steps, "runs": runs, "median": med,
            "first_step_ratio": med["leanfit"]["first_step_s"] / med["hf"]["first_step_s"],
            "first_step_ratio_per_round": ratios,
            "peak_rss_ratio": med["leanfit"]["peak_rss_mib"] / med["hf"]["peak_rss_mib"]}


# ---- 2. padding on short texts ------------------------------------------------------------------------------
def padding(data: dict, rounds: int) -> dict[str, Any]:
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import run_recipe
    from leanfit.engine.task import build_task

    files = data["short"]
    epochs = 2
    variants = {"fixed": ("max_length", False), "dynamic": ("longest", False), "grouped": ("longest", True)}
    tasks = {p: build_task("text-file", **files, max_length=64, padding=p) for p in ("max_length", "longest")}
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for v in order:
            pad, grouped = variants[v]
            rec = Recipe.from_dict(recipe(files, padding=pad, epochs=epochs, group_by_length=grouped))
            t0 = time.perf_counter()
            res = run_recipe(rec, task=tasks[pad])
            wall = time.perf_counter() - t0
            row = {"wall_s": wall, "train_wall_s": res.costs["wall_time_s"], "train_flops": res.costs["train_flops"],
                   "tokens_seen": res.costs["tokens_seen"], "padded_tokens_seen": res.costs["padded_tokens_seen"],
                   "val_accuracy": res.accuracy, "test_accuracy": res.test_accuracy, "status": res.status}
            runs[v].append(row)
            print(f"padding round {r} {v}: " + ", ".join(f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}"
                                                         for k, x in row.items()), flush=True)
    med = {v: {k: median([x[k] for x in runs[v]]) for k in runs[v][0] if k != "status"} for v in runs}
    ratio = {v: {k: med[v][k] / med["fixed"][k] for k in ("train_flops", "wall_s", "train_wall_s")} for v in med}
    acc_diff = {v: {k: 100 * (med[v][k] - med["fixed"][k]) for k in ("val_accuracy", "test_accuracy")} for v in med}
    return {"what": f"text-file task on TREC questions (800 train / 400 validation / {len(read_tsv(Path(files['test'])))} "
                    f"test), max_length 64, LoRA r8, batch 16, {epochs} epochs, seed 0; wall = run_recipe end to end "
                    "(train + metering + evals) on a loaded task",
            "rounds": rounds, "epochs": epochs, "runs": runs, "median": med, "ratio_to_fixed": ratio,
            "accuracy_diff_pt": acc_diff}


# ---- 3. head-only frozen-prefix cache -----------------------------------------------------------------------
def frozen(data: dict, rounds: int) -> dict[str, Any]:
    from leanfit.engine.callbacks import Callback
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import run_recipe
    from leanfit.engine.task import build_task

    class EpochClock(Callback):
        def __init__(self):
            self.start, self.times = 0.0, []

        def on_epoch_start(self, s):
            self.start = s.wall_time

        def on_epoch_end(self, s):
            self.times.append(s.wall_time - self.start)

    files = data["small"]
    epochs = 4
    task = build_task("text-file", **files, max_length=64)
    runs: dict[str, list[dict]] = {"cache": [], "eval": []}
    for r in range(rounds):
        for mode in (("cache", "eval") if r % 2 == 0 else ("eval", "cache")):
            rec = Recipe.from_dict(recipe(files, adapter="head_only", lr=1e-2, epochs=epochs, frozen_prefix=mode))
            clock = EpochClock()
            res = run_recipe(rec, task=task, callbacks=[clock])
            row = {"epoch_s": clock.times, "later_epoch_s": median(clock.times[1:]), "first_epoch_s": clock.times[0],
                   "train_wall_s": res.costs["wall_time_s"], "train_flops": res.costs["train_flops"],
                   "cache_flops": res.costs["cache_flops"], "metrics": res.metrics, "test_metrics": res.test_metrics}
            runs[mode].append(row)
            print(f"frozen round {r} {mode}: epochs {[round(t, 3) for t in clock.times]} s, val {res.metrics}, "
                  f"test {res.test_metrics}", flush=True)
    med = {m: {k: median([x[k] for x in runs[m]]) for k in ("later_epoch_s", "first_epoch_s", "train_wall_s")}
           for m in runs}
    same = all(a["metrics"] == b["metrics"] and a["test_metrics"] == b["test_metrics"]
               for a, b in zip(runs["cache"], runs["eval"]))
    diff = max(abs(a[s][k] - b[s][k]) for a, b in zip(runs["cache"], runs["eval"])
               for s in ("metrics", "test_metrics") for k in a[s])
    return {"what": f"head_only on 320 TREC rows, batch 16, {epochs} epochs, lr 1e-2; per-epoch time on the run's "
                    "train clock (the one-time caching pass falls in epoch 1's time); metrics = validation and test",
            "rounds": rounds, "epochs": epochs, "runs": runs, "median": med,
            "speedup_later_epochs": med["eval"]["later_epoch_s"] / med["cache"]["later_epoch_s"],
            "metrics_identical": same, "max_abs_metric_diff": diff}


# ---- 4. step time vs HF Trainer + peft ----------------------------------------------------------------------
def step_time(data: dict, rounds: int) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback

    from hf_baseline import build
    from leanfit.engine.callbacks import Callback
    from leanfit.engine.recipe import Recipe, Schedule
    from leanfit.engine.run import build_run
    from leanfit.engine.trainer import Trainer

    files = data["small"]
    steps, bs = 8, 16

    class LfClock(Callback):
        def __init__(self):
            self.ends, self.clock = [], []

        def after_step(self, s):
            self.ends.append(time.perf_counter()), self.clock.append(s.wall_time)

    class HfClock(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())

    rec = Recipe.from_dict(recipe(files))
    run = build_run(rec)
    labels = run.task.meta["labels"]
    runs: dict[str, list[float]] = {"leanfit": [], "leanfit_clock": [], "hf": []}
    widths = []
    for r in range(rounds + 1):  # round 0: warm-up, not recorded
        order = torch.randperm(run.task.n_train, generator=torch.Generator().manual_seed(r))
        # leanfit dedupes/keeps file order for train rows; the HF script reads the same file in the same order
        order_l = order[: steps * bs].tolist()
        t = {}
        for which in (("leanfit", "hf") if r % 2 == 0 else ("hf", "leanfit")):
            if which == "leanfit":
                c = LfClock()
                Trainer(run.task, run.model, run.optimizer, Schedule(epochs=1, batch_size=bs, max_steps=steps), [c],
                        seed=r, evaluate=False).fit()
                t["leanfit"] = (c.ends[-1] - c.ends[0]) / (steps - 1)
                t["leanfit_clock"] = (c.clock[-1] - c.clock[0]) / (steps - 1)
            else:
                c = HfClock()
                trainer, _ = build(str(run.task.meta["model_dir"]), files["train"], bs, steps, order=order_l,
                                   labels=labels, callbacks=[c], seed=r)
                trainer.train()
                t["hf"] = (c.ends[-1] - c.ends[0]) / (steps - 1)
        # padded widths of the timed batches: leanfit trims to the longest row rounded up to 8; HF's collator
        # pads to the longest row (the same tokenizer and truncation, so the longest real row is the same)
        lengths = run.task.lengths("train")
        for i in range(1, steps):
            rows = order[i * bs:(i + 1) * bs]
            widths.append((int(run.task.batch("train", rows)["input_ids"].shape[1]), int(lengths[rows].max())))
        if r == 0:
            widths.clear()
            continue
        for k, v in t.items():
            runs[k].append(v)
        print(f"step_time round {r}: leanfit {t['leanfit'] * 1e3:.0f} ms/step (train clock "
              f"{t['leanfit_clock'] * 1e3:.0f}), hf {t['hf'] * 1e3:.0f} ms/step, ratio {t['leanfit'] / t['hf']:.3f}",
              flush=True)
    ratios = [a / b for a, b in zip(runs["leanfit"], runs["hf"])]
    return {"what": f"LoRA r8, batch 16, steps 2..{steps} of each round (wall between the ends of step 1 and step "
                    f"{steps}; leanfit's includes FLOP metering of new batch shapes, its train clock excludes it); same "
                    "rows in the same order for both; one process, interleaved",
            "rounds": rounds, "steps": steps, "runs": runs, "ratios": ratios, "ratio": median(ratios),
            "ratio_train_clock": median([a / b for a, b in zip(runs["leanfit_clock"], runs["hf"])]),
            "median_step_s": {k: median(v) for k, v in runs.items()},
            "timed_batch_widths_leanfit_hf": widths,
            "padded_token_ratio": sum(a for a, _ in widths) / sum(b for _, b in widths)}


# ---- 5. config-error latency --------------------------------------------------------------------------------
def config_error(data: dict, rounds: int) -> dict[str, Any]:
    files = data["small"]
    bad = {"unknown_adapter": write_yaml("bad_adapter.yaml", recipe(files, adapter={"name": "loraa", "r": 8})),
           "negative_lr": write_yaml("bad_lr.yaml", recipe(files, lr=-1e-3))}
    runs: dict[str, list[float]] = {k: [] for k in bad}
    runs[REF_TORCH] = []
    msgs = {}
    for r in range(5):
        runs[REF_TORCH].append(spawn(["-c", "import torch"])["wall_s"])
        for k, p in bad.items():
            res = spawn(cli("run", str(p)))
            if res["rc"] == 0:
                raise RuntimeError(f"{k}: expected a config error\n{res['log']}")
            runs[k].append(res["wall_s"])
            msgs[k] = res["log"].strip().splitlines()[-1][:300] if res["log"].strip() else ""
            print(f"config_error {r} {k}: {res['wall_s']:.2f} s", flush=True)
    return {"what": "`leanfit run bad.yaml` in a fresh process until it exits with the error (median of 5)",
            "runs": runs, "median_s": {k: median(v) for k, v in runs.items()}, "messages": msgs}


def config_error_before(data: dict, rounds: int) -> dict[str, Any]:
    """The negative-lr error with leanfit as committed before this benchmark (git HEAD of the branch, exported to a
    temporary folder) vs the worktree: what deferring pytorch-optimizer's registration and validating before the
    heavy imports bought. Interleaved, median of ``rounds``."""
    head = WORK / "leanfit-before"
    rev = os.environ.get("SPEED_BEFORE_REV", "fb11aed")
    if not head.exists():
        head.mkdir()
        arch = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "leanfit"], check=True,
                              capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(head)], input=arch, check=True)
    p = write_yaml("bad_lr.yaml", recipe(data["small"], lr=-1e-3))
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds):
        for k in (("before", "after") if r % 2 == 0 else ("after", "before")):
            res = spawn(cli("run", str(p)), pythonpath=str(head) if k == "before" else None)
            if res["rc"] == 0:
                raise RuntimeError(f"{k}: expected a config error\n{res['log']}")
            runs[k].append(res["wall_s"])
            print(f"config_error_before {r} {k}: {res['wall_s']:.2f} s", flush=True)
    return {"what": f"`leanfit run` of the negative-lr recipe: leanfit at {rev} (before) vs this branch (after)",
            "rev": rev, "rounds": rounds, "runs": runs, "median_s": {k: median(v) for k, v in runs.items()}}


# ---- 6. lr-find vs training -------------------------------------------------------------------------------
def lr_find(data: dict, rounds: int) -> dict[str, Any]:
    files = data["short"]
    small = {**files, "validation": data["small"]["validation"], "test": data["small"]["test"]}
    rp = write_yaml("lr40.yaml", recipe(small, max_steps=40))
    out = WORK / "lrfind.json"
    cmds = {"lr_find": cli("lr-find", str(rp), "--steps", "40", "--lr-max", "0.1", "--out", str(out),
                           "--plot", str(WORK / "lr.png")),
            "run": cli("run", str(rp), "--storage", f"sqlite:///{WORK / 'runs.db'}")}
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    lr_steps = []
    for r in range(rounds):
        for k in (list(cmds) if r % 2 == 0 else list(cmds)[::-1]):
            res = spawn(cmds[k])
            if res["rc"] != 0:
                raise RuntimeError(f"{k} failed\n{res['log']}")
            runs[k].append(res["wall_s"])
            if k == "lr_find":
                lr_steps.append(len(json.loads(out.read_text())["lrs"]))
            print(f"lr_find round {r} {k}: {res['wall_s']:.2f} s", flush=True)
    med = {k: median(v) for k, v in runs.items()}
    return {"what": "fresh processes: `leanfit lr-find --steps 40 --lr-max 0.1` vs `leanfit run` with max_steps 40 "
                    "(LoRA r8, batch 16, 800 TREC train rows; the run also scores 64 validation + 64 test rows)",
            "rounds": rounds, "runs": runs, "median_s": med, "ratio": med["lr_find"] / med["run"],
            "lr_find_steps_done": lr_steps}


SECTIONS = {"first_step": first_step, "padding": padding, "frozen": frozen, "step_time": step_time,
            "config_error": config_error, "config_error_before": config_error_before, "lr_find": lr_find}
ROUNDS = {"first_step": 4, "padding": 2, "frozen": 3, "step_time": 4, "config_error": 5, "config_error_before": 5, "lr_find": 3}


# ---- the table ----------------------------------------------------------------------------------------------
def _ok(cond: bool) -> str:
    return "met" if cond else "**not met**"


def table_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(row, measured, goal, status) per measurement present in results."""
    rows = []
    if "first_step" in res:
        f = res["first_step"]
        m = f["median"]
        rows.append(("time to first step (leanfit run / HF Trainer script)",
                     f"{m['leanfit']['first_step_s']:.2f} s / {m['hf']['first_step_s']:.2f} s = "
                     f"{f['first_step_ratio']:.2f}×", "≤ 1.0×", _ok(f["first_step_ratio"] <= 1.0)))
        rows.append(("peak RSS (leanfit run / HF Trainer script)",
                     f"{m['leanfit']['peak_rss_mib']:.0f} MiB / {m['hf']['peak_rss_mib']:.0f} MiB = "
                     f"{f['peak_rss_ratio']:.2f}×", "≤ 1.0×", _ok(f["peak_rss_ratio"] <= 1.0)))
    if "padding" in res:
        p = res["padding"]
        for v in ("dynamic", "grouped"):
            q, d = p["ratio_to_fixed"][v], p["accuracy_diff_pt"][v]
            ok = q["train_flops"] <= 0.5 and q["wall_s"] <= 0.5 and all(abs(x) <= 0.5 for x in d.values())
            rows.append((f"short texts: {'dynamic' if v == 'dynamic' else 'dynamic + group_by_length'} / fixed "
                         "padding", f"FLOPs {q['train_flops']:.2f}×, wall {q['wall_s']:.2f}× (train clock "
                         f"{q['train_wall_s']:.2f}×), accuracy Δ val {d['val_accuracy']:+.1f} / test "
                         f"{d['test_accuracy']:+.1f} pt", "≤ 0.5×, Δ ≤ ±0.5 pt", _ok(ok)))
    if "frozen" in res:
        f = res["frozen"]
        m = f["median"]
        rows.append(("head-only per epoch after the first (frozen_prefix eval / cache)",
                     f"{m['eval']['later_epoch_s']:.3f} s / {m['cache']['later_epoch_s']:.4f} s = "
                     f"{f['speedup_later_epochs']:.0f}×; metrics identical: {'yes' if f['metrics_identical'] else 'no'}"
                     f" (max abs difference {f['max_abs_metric_diff']:.1g})",
                     "≥ 5×, identical", _ok(f["speedup_later_epochs"] >= 5 and f["metrics_identical"])))
    if "step_time" in res:
        s = res["step_time"]
        m = s["median_step_s"]
        rows.append(("LoRA step time (leanfit / HF Trainer + peft, dynamic padding)",
                     f"{m['leanfit'] * 1e3:.0f} ms / {m['hf'] * 1e3:.0f} ms = {s['ratio']:.2f}× (train clock "
                     f"{s['ratio_train_clock']:.2f}×); padded tokens {s['padded_token_ratio']:.2f}×", "≤ 0.9×",
                     _ok(s["ratio"] <= 0.9)))
    if "config_error" in res:
        c = res["config_error"]["median_s"]
        rows.append(("config error latency (unknown adapter / negative lr)",
                     f"{c['unknown_adapter']:.2f} s / {c['negative_lr']:.2f} s (`import torch` alone: "
                     f"{c[REF_TORCH]:.2f} s)", "< 2 s", _ok(max(c['unknown_adapter'], c['negative_lr']) < 2.0)))
    if "config_error_before" in res:
        b = res["config_error_before"]
        rows.append((f"config error latency, negative lr: before this branch's fixes ({b['rev']}) / after",
                     f"{b['median_s']['before']:.2f} s / {b['median_s']['after']:.2f} s", "(diagnostic)", "—"))
    if "lr_find" in res:
        lf = res["lr_find"]
        rows.append(("lr-find 40 steps / run 40 steps",
                     f"{lf['median_s']['lr_find']:.1f} s / {lf['median_s']['run']:.1f} s = {lf['ratio']:.2f}×",
                     "≤ 1.2×", _ok(lf["ratio"] <= 1.2)))
    return rows


def render_table(data: dict[str, Any]) -> str:
    """The markdown table docs/speed.md carries between the speed-table markers (from results/speed.json)."""
    res = data["results"]
    lines = [f"Measured {data['meta'].get('when', '?')}, torch threads {data['run']['threads']}, medians of "
             "interleaved rounds (see each section's `rounds` in benchmarks/results/speed.json).", "",
             "| measurement | leanfit vs baseline | goal | status |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(res)]
    return "\n".join(lines)


def render_doc(path: Path = DOC, results: Path = RESULTS / "speed.json") -> None:
    data = json.loads(results.read_text())
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{render_table(data)}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--rounds", type=int, default=None, help="override every section's rounds")
    ap.add_argument("--render", action="store_true")
    a = ap.parse_args()
    if a.render:
        render_doc()
        return
    import torch

    torch.set_num_threads(THREADS)
    os.environ.update({k: ENV[k] for k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "LEANFIT_CACHE")})
    data = make_data()
    old = RESULTS / "speed.json"
    results = json.loads(old.read_text())["results"] if old.exists() else {}
    for name in a.only.split(","):
        t0 = time.perf_counter()
        results[name] = SECTIONS[name](data, a.rounds or ROUNDS[name])
        results[name]["section_wall_s"] = time.perf_counter() - t0
        p = write("speed", {"threads": THREADS, "sections": list(results)}, results)  # after each: partial is kept
        print(f"{name} done in {results[name]['section_wall_s']:.0f} s; wrote {p}", flush=True)
    print(render_table(json.loads(p.read_text())))


if __name__ == "__main__":
    main()
