"""Markdown tables of the language-model benchmark, rendered from ``benchmarks/results/lm.json`` only (no torch, no
model), so ``docs/lm.md`` and the JSON cannot drift: ``python benchmarks/lm.py --assemble`` writes them between
the markers below, and ``tests/test_lm_numbers.py`` regenerates them and compares."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- lm-tables:begin -->", "<!-- lm-tables:end -->"
RESULTS = Path(__file__).resolve().parent / "results" / "lm.json"
DOC = Path(__file__).resolve().parents[1] / "docs" / "lm.md"
TASK_TITLES = {"topic": "lm-bbc-topic (5 BBC News topics as one-word completions)",
               "arith": "lm-arithmetic (2-digit addition, exact match of the generated answer)"}
PARTS = ("main", "tail", "hf", "levers", "mem", "compress", "merge", "data", "search")


def _mib(b: float | None) -> str:
    if b is None:
        return "–"
    m = b / 2**20
    return f"{m:,.0f} MiB" if m >= 10 or m == 0 else f"{m:.2f} MiB"


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "–" if x is None else format(x, fmt)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _params(r: dict) -> str:
    if not r["trainable_params"]:
        return "0"
    return f"{r['trainable_params']:,} ({r['trainable_percent']:.2f}%)"


def _lr(r: dict) -> str:
    if r.get("lr") is None:
        return "–"
    by = r.get("validation_by_lr") or {}
    swept = ", ".join(f"{float(k):g}: {_pct(v)}" for k, v in by.items()) if len(by) > 1 else ""
    return f"{r['lr']:g}" + (f" (val {swept})" if swept else f"; {r.get('lr_choice', '')}")


def main_table(rows: list[dict]) -> list[str]:
    head = ["method", "LR (validation accuracy per LR)", "steps", "val exact match", "test exact match",
            "test rank acc.", "trainable params", "optimizer state", "train memory (metered)", "peak RSS",
            "train FLOPs", "train wall time"]
    out = []
    for r in rows:
        t = r["test"]
        out.append([r["method"], _lr(r), str(r["steps"]), _pct(r["validation_accuracy"]), _pct(t.get("accuracy")),
                    _pct(t.get("rank_accuracy")), _params(r), _mib(r["optimizer_state_bytes"]),
                    _mib(r["train_memory_bytes"]), _mib(r["peak_rss_bytes"]), _num(r["train_flops"]),
                    "–" if not r["wall_time_s"] else f"{r['wall_time_s']:.0f} s"])
    return _table(head, out)


def hf_table(hf: dict) -> list[str]:
    rows = [[k, f"{v['leanfit_median_s']:.2f} s", f"{v['hf_median_s']:.2f} s", f"{v['ratio']:.3f}",
             ", ".join(f"{x:.3f}" for x in v["ratio_per_round"]), str(v["n_steps_each"])] for k, v in hf.items()]
    return _table(["fine-tune", "leanfit step (median)", "HF Trainer step (median)", "ratio", "ratio per round",
                   "timed steps each"], rows)


def levers_table(lv: dict) -> list[str]:
    act, t = lv["activation_bytes"], lv["step_time_median_s"]
    rows = [["off", _mib(act["off"]), "–", f"{t['off']:.2f} s"],
            ["on", _mib(act["on"]), _mib(act["on"] + lv["checkpoint_block_input_bytes"]), f"{t['on']:.2f} s"]]
    return _table(["gradient checkpointing", "saved activations (metered)", "+ kept block inputs",
                   "step time (median)"], rows) + [
        "", f"Ratio of saved activations off/on: {lv['activation_ratio']:.1f}x metered, "
            f"{lv['activation_ratio_with_block_inputs']:.1f}x counting the block inputs checkpointing keeps; "
            f"step time on/off: {lv['step_time_ratio']:.3f}x (per round: "
            + ", ".join(f"{x:.3f}" for x in lv.get("step_time_ratio_per_round", [])) + ")."]


MEM_NAMES = {"infer": "inference (3 forwards, no grad)", "mezo": "MeZO (3 steps, leanfit Trainer)",
             "lora": "LoRA r=8 (3 steps, AdamW)", "full": "full fine-tune (3 steps, AdamW)",
             "fulltrainer": "full fine-tune (3 steps, leanfit Trainer with meters)"}


def mem_table(mem: dict) -> list[str]:
    base = mem.get("infer", {}).get("peak_rss_bytes")
    rows = [[MEM_NAMES.get(k, k), _mib(v["rss_before_bytes"]), _mib(v["peak_rss_bytes"]),
             f"{v['peak_rss_bytes'] / base:.3f}" if base else "–"]
            for k, v in sorted(mem.items(), key=lambda kv: list(MEM_NAMES).index(kv[0]) if kv[0] in MEM_NAMES else 99)]
    return _table(["process (fresh, fp32, batches of 8 topic prompts)", "RSS before (weights loaded)", "peak RSS",
                   "peak / inference peak"], rows)


def compress_table(comp: list[dict]) -> list[str]:
    rows = [[c["config"], f"{c['test_perplexity']:.3f}", f"{c['perplexity_increase']:+.3f}",
             f"{c['text_perplexity']:.2f}", f"{c['text_perplexity_increase']:+.2f}", _pct(c["test_accuracy"]),
             _pct(c.get("test_rank_accuracy")), _mib(c["file_bytes"]), f"{c['file_ratio']:.2f}",
             f"{c['latency_ratio']:.2f}"] for c in comp]
    return _table(["config", "test perplexity (completions)", "increase", "BBC text perplexity", "increase",
                   "test exact match", "test rank acc.", "file", "file ratio", "latency ratio"], rows)


def merge_table(mg: dict) -> list[str]:
    rows = [[k, "–", _pct(v["topic"]), _pct(v["arith"]), _pct(v["mean"])] for k, v in mg["individual"].items()]
    rows += [[k, f"{v['lambda']:g}", _pct(v["topic"]), _pct(v["arith"]), _pct(v["mean"])]
             for k, v in mg["methods"].items()]
    return _table(["model", "λ (validation)", "topic test", "arithmetic test", "mean"], rows)


def data_table(data: list[dict]) -> list[str]:
    rows = [[d["method"], _pct(d["validation_accuracy"]), _pct(d["test_accuracy"]), _num(d["train_flops"]),
             _num(d["scoring_flops"]), str(d["steps"])] for d in data]
    return _table(["selection", "val exact match", "test exact match", "train FLOPs (incl. scoring)",
                   "scoring FLOPs", "steps"], rows)


def search_table(s: dict) -> list[str]:
    rows = [[t["label"], _num(t.get("lr")), t["status"], _pct(t["validation_accuracy"]),
             _pct(t["test_accuracy"]), _num(t["train_flops"])] for t in s["trials"]]
    return _table(["trial", "LR", "status", "val accuracy", "test accuracy", "train FLOPs"], rows)


def _status(met: bool | None) -> str:
    return "not run" if met is None else ("**met**" if met else "**not met**")


def targets_table(tg: dict) -> list[str]:
    rows = []
    for key, what in (("lora", "LoRA r=8 (all 7 projections)"), ("lora_qv", "LoRA r=8 on q,v only")):
        x = tg.get(f"{key}_within_2_points_of_full_topic")
        rows.append([f"{what} within 2 points of full FT (topic test), <1% trainable params",
                     f"full {_pct(x['full_test_accuracy'])}, LoRA {_pct(x['lora_test_accuracy'])}: full − LoRA = "
                     f"{x['gap_points']:+.1f} points; LoRA trains {x['lora_trainable_percent']:.2f}%" if x else "–",
                     _status(x["met"] if x else None) + (
                         f" (accuracy: {'met' if x['accuracy_met'] else 'not met'}; <1% params: "
                         f"{'met' if x['params_met'] else 'not met'})" if x else "")])
    x = tg.get("gptq4_ppl_increase_le_half_rtn4")
    rows.append(["GPTQ 4-bit perplexity increase ≤ ½ RTN 4-bit's",
                 f"completions: GPTQ {x['gptq4_increase']:+.3f} vs RTN {x['rtn4_increase']:+.3f}; BBC text: "
                 f"GPTQ {x['gptq4_text_increase']:+.2f} vs RTN {x['rtn4_text_increase']:+.2f} "
                 f"(met on text: {'yes' if x['met_on_text'] else 'no'})" if x else "–",
                 _status(x["met"] if x else None)])
    x = tg.get("mezo_memory_le_1.2x_inference")
    rows.append(["MeZO train memory ≤ 1.2× inference footprint",
                 f"peak RSS {_mib(x['peak_rss_mezo'])} vs {_mib(x['peak_rss_inference'])}: "
                 f"{x['ratio_peak_rss']:.3f}x" if x else "–", _status(x["met"] if x else None)])
    x = tg.get("checkpointing_2x_activations_at_1.4x_time")
    rows.append(["gradient checkpointing: saved activations ÷ ≥2 at ≤1.4× step time",
                 f"activations ÷{x['activation_ratio_with_block_inputs']:.1f} (with kept block inputs), step time "
                 f"{x['step_time_ratio']:.3f}x" if x else "–", _status(x["met"] if x else None)])
    x = tg.get("step_time_le_1.05x_hf_trainer")
    for k in ("lora", "full"):
        v = (x or {}).get(k)
        rows.append([f"step time ≤ 1.05× HF Trainer{' + peft' if k == 'lora' else ''} ({k})",
                     f"ratio {v['ratio']:.3f}" if v else "–", _status(v["met"] if v else None)])
    return _table(["target (issue 12)", "measured", "status"], rows)


def settings_lines(run: dict, results: dict) -> list[str]:
    out = [f"Model: {run['model']}; {run['threads']} thread(s); batch {run['batch_size']}; seeds {run['seeds']}; "
           f"optimizer steps per gradient method: " + ", ".join(f"{k} {v}" for k, v in run["steps"].items())
           + f" (MeZO ×{run['mezo_steps_factor']}); schedule {json.dumps(run['schedule'])}."]
    out.append(f"Selection: {run['selection']}.")
    for r in run.get("reductions", []):
        out.append(f"Reduced to fit the time budget: {r}.")
    nr = results.get("not_run") or []
    if nr:
        out.append("Not run (time): " + ", ".join(f"`{u}`" for u in nr) + ".")
    return [f"- {x}" for x in out]


def render(doc: dict) -> str:
    """Every table of docs/lm.md, from lm.json's dict."""
    res, tabs = doc["results"], doc["results"].get("tables", {})
    out = ["### Targets", ""] + targets_table(res.get("targets", {}))
    out += ["", "### Run settings", ""] + settings_lines(doc["run"], res)
    for key, rows in tabs.get("main", {}).items():
        out += ["", f"### Fine-tuning: {TASK_TITLES.get(key, key)}", ""] + main_table(rows)
    sections = [("hf", "Step time: leanfit vs Hugging Face Trainer (+ peft), 8×64 tokens, fp32", hf_table),
                ("levers", "Gradient checkpointing (LoRA r=8, 8×64 tokens, fp32)", levers_table),
                ("mem", "Peak memory per process", mem_table),
                ("compress", "Compression of the topic LoRA fine-tune (merged)", compress_table),
                ("merge", "Merging the topic and arithmetic fine-tunes", merge_table),
                ("data", "Data selection on noisy arithmetic", data_table),
                ("search", "Search (TPE + successive halving)", search_table)]
    for key, title, fn in sections:
        if key in tabs:
            out += ["", f"### {title}", ""] + fn(tabs[key])
    return "\n".join(out) + "\n"


def splice(text: str, tables: str) -> str:
    """``text`` with everything between the markers replaced by ``tables``."""
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:a] + "\n" + tables + text[b:]


def between(text: str) -> str:
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].lstrip("\n")


def write_doc(results: Path = RESULTS, doc: Path = DOC) -> bool:
    if not (results.exists() and doc.exists() and BEGIN in doc.read_text()):
        return False
    data = json.loads(results.read_text())
    doc.write_text(splice(doc.read_text(), render(data)))  # the README's LM tables: benchmarks/tables.py
    return True
