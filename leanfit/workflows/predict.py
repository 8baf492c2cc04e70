"""Using a saved model: ``leanfit.load(DIR)`` returns a Predictor; ``predict(texts)`` gives labels and
probabilities for classifiers and generations for language models, in batches padded to their longest row and run
under ``torch.inference_mode``; ``predict_file`` / ``evaluate_file`` do the same for a CSV/TSV/JSONL file."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..engine.errors import ConfigError, DataError
from ..engine.metrics import Evaluation
from .model_io import SavedModel
from .model_io import load as load_saved


class Predictor:
    def __init__(self, saved: SavedModel, batch_size: int = 32):
        self.saved, self.batch_size = saved, batch_size

    @property
    def labels(self) -> list[str]:
        return self.saved.labels

    @torch.inference_mode()
    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """Classifier logits [n, C] (text classifiers: raw texts; tabular models: rows of features)."""
        s = self.saved
        if s.kind == "text-classifier":
            outs = []
            for i in range(0, len(texts), self.batch_size):
                enc = s.tokenizer(list(texts[i:i + self.batch_size]), padding="longest", truncation=True,
                                  max_length=s.manifest.get("max_length") or 512, return_tensors="pt")
                outs.append(s.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).float())
            return torch.cat(outs) if outs else torch.empty(0, len(self.labels))
        if s.kind in ("mlp", "cnn1d"):
            x = torch.as_tensor(texts, dtype=torch.float32)
            if s.manifest.get("input_mean") is not None:
                x = (x - torch.tensor(s.manifest["input_mean"])) / torch.tensor(s.manifest["input_std"])
            return s.model(x).float()
        raise ConfigError(f"logits are for classifiers, but this model is a {s.kind}. Fix: use predict().")

    def predict(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """One dict per input: {label, probabilities} for classifiers, {generation} (+ label) for LMs."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i:i + self.batch_size])
            out += self._lm(chunk) if self.saved.kind == "causal-lm" else self._classify(chunk)
            if progress:
                progress(len(chunk))
        return out

    def _classify(self, texts: list[str]) -> list[dict[str, Any]]:
        probs = self.logits(texts).softmax(-1)
        names = self.labels or [str(i) for i in range(probs.shape[1])]
        return [{"label": names[int(p.argmax())], "probabilities": {n: float(v) for n, v in zip(names, p)}}
                for p in probs]

    @torch.inference_mode()
    def _lm(self, prompts: list[str]) -> list[dict[str, Any]]:
        from ..tasks.lm import greedy, prompt_text, rank_choices

        s, m = self.saved, self.saved.manifest
        ids = [s.tokenizer(prompt_text(s.tokenizer, p, bool(m.get("chat_template"))),
                           add_special_tokens=False).input_ids for p in prompts]
        gens = greedy(s.model, s.tokenizer, ids, int(m.get("max_new_tokens") or 32), self.batch_size)
        rows = [{"generation": g} for g in gens]
        if m.get("choices"):
            best = rank_choices(s.model, s.tokenizer, ids, m["choices"], self.batch_size)
            for r, k in zip(rows, best.tolist()):
                r["label"] = m["choices"][k].strip()
        return rows


def load(folder: str | Path, batch_size: int = 32) -> Predictor:
    """``leanfit.load(DIR)``: a Predictor for a saved model folder."""
    return Predictor(load_saved(folder), batch_size)


# ---- files ----------------------------------------------------------------------------------------------------
def read_column(path: str | Path, column: str) -> list[str]:
    from ..tasks.files import read_table

    texts, _ = read_table(path, column, column)
    return texts


def predict_file(predictor: Predictor, path: str | Path, column: str, out: str | Path,
                 progress: Callable[[int], None] | None = None) -> int:
    """Predict every row's ``column`` and write a CSV: the input text, then the prediction's fields."""
    texts = read_column(path, column)
    rows = predictor.predict(texts, progress)
    names = predictor.labels
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if predictor.saved.kind == "causal-lm":
            extra = ["label"] if predictor.saved.manifest.get("choices") else []
            w.writerow([column, "generation", *extra])
            w.writerows([t, r["generation"], *[r[k] for k in extra]] for t, r in zip(texts, rows))
        else:
            w.writerow([column, "label", *(f"p_{n}" for n in names)])
            w.writerows([t, r["label"], *(f"{r['probabilities'][n]:.6f}" for n in names)] for t, r in zip(texts, rows))
    return len(rows)


def evaluate_file(predictor: Predictor, path: str | Path, text_column: str, label_column: str) -> Evaluation:
    """Every classifier metric of a saved model on a labelled file (labels must be the model's label names); for a
    language model, exact match of its generations against the completion column."""
    from ..engine.metrics import classification_evaluation
    from ..tasks.files import read_table

    texts, gold = read_table(path, text_column, label_column)
    if predictor.saved.kind == "causal-lm":
        from ..tasks.lm import normalise_answer

        gens = [r["generation"] for r in predictor.predict(texts)]
        hits = [normalise_answer(g) == normalise_answer(a) for g, a in zip(gens, gold)]
        return Evaluation(metrics={"accuracy": sum(hits) / max(len(hits), 1)},
                          details={"examples": [{"answer": a, "generated": g} for g, a in zip(gens[:5], gold)]})
    names = predictor.labels
    unknown = sorted(set(gold) - set(names))
    if unknown:
        raise DataError(f"{path}: labels {unknown[:5]} are not among the model's labels {names}. Fix: use the label "
                        "names the model was trained with.")
    logits = predictor.logits(texts)
    y = torch.tensor([names.index(g) for g in gold])
    return classification_evaluation(logits, y, len(names), names)


def throughput(fn: Callable[[list[str]], Any], texts: list[str], rounds: int = 3) -> float:
    """Median rows per second of ``fn(texts)`` over ``rounds`` (for benchmarks)."""
    import statistics
    import time

    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(texts)
        times.append(time.perf_counter() - t0)
    return len(texts) / max(statistics.median(times), 1e-12) if texts else math.nan
