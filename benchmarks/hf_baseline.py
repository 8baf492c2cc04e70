"""The Hugging Face baseline speed.py compares leanfit against: ``transformers.Trainer`` + peft LoRA on the same
model folder and TSV files, with HF's own defaults (AutoModelForSequenceClassification, DataCollatorWithPadding —
dynamic padding — and the Trainer's default optimizer). As a script it is what a user would write by hand:

    python benchmarks/hf_baseline.py MODEL_DIR TRAIN.tsv VALIDATION.tsv TEST.tsv --batch-size 16 --max-steps 8

(train for max_steps, then score validation and test, print one JSON line). speed.py also imports ``build`` to
time steps in-process on batches in leanfit's order.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def read_tsv(path: str) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def build(model_dir: str, train: str, batch_size: int, max_steps: int, lr: float = 5e-3, r: int = 8,
          order: list[int] | None = None, labels: list[str] | None = None, out_dir: str = "/tmp/hf-speed-out",
          eval_files: dict[str, str] | None = None, callbacks: list | None = None, seed: int = 0):
    """A Trainer ready to ``train()``: LoRA r on query/value (alpha 2r, no dropout, the head trained as
    modules_to_save — leanfit's lora defaults), the train rows in ``order`` when given (a sequential sampler, so
    both tools see the same batches), else HF's own shuffling."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    texts, y = read_tsv(train)
    names = labels or sorted(set(y))
    ids = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(model_dir)

    def encode(texts: list[str], y: list[str]) -> list[dict]:
        enc = tok(texts, truncation=True, max_length=64)  # no padding here: the collator pads each batch
        return [{"input_ids": a, "attention_mask": m, "labels": ids[l]}
                for a, m, l in zip(enc["input_ids"], enc["attention_mask"], y)]

    data = encode(texts, y)
    if order is not None:
        data = [data[i] for i in order]
    evals = {k: encode(*read_tsv(v)) for k, v in (eval_files or {}).items()}
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(names),
                                                               attn_implementation="eager")
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                             target_modules=["query", "value"], modules_to_save=["classifier"]))
    args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=batch_size, max_steps=max_steps,
                             learning_rate=lr, report_to="none", save_strategy="no", eval_strategy="no",
                             logging_strategy="no", disable_tqdm=True, use_cpu=True, seed=seed,
                             dataloader_num_workers=0)

    def accuracy(p) -> dict:
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    class Ordered(Trainer):
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset) if order is not None else super()._get_train_sampler(*a, **k)

    return Ordered(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok),
                   compute_metrics=accuracy, callbacks=callbacks or []), evals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("train")
    ap.add_argument("validation")
    ap.add_argument("test")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-3)
    a = ap.parse_args()
    t0 = time.perf_counter()
    trainer, evals = build(a.model_dir, a.train, a.batch_size, a.max_steps, a.lr,
                           eval_files={"validation": a.validation, "test": a.test})
    trainer.train()
    out = {k: trainer.evaluate(v, metric_key_prefix=k) for k, v in evals.items()}
    print(json.dumps({"metrics": out, "wall_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
