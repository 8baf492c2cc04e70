"""Readers of users' data files: CSV, TSV, JSONL/JSON, or a local Hugging Face dataset folder, into (texts,
labels), with named errors for missing files, unsupported types and missing columns."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..engine.errors import DataError, MissingExtraError


def read_table(path: str | Path, text_column: str = "text", label_column: str = "label") -> tuple[list[str], list[str]]:
    """Read (texts, raw labels) from CSV, TSV, JSONL/JSON, or a local HF dataset folder (save_to_disk)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {str(p)!r} does not exist. Fix: check the path.")
    if p.is_dir():
        try:
            import datasets  # optional
        except ImportError:
            raise MissingExtraError("reading a HF dataset folder needs `datasets`. Fix: pip install datasets") from None
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"]
        rows: list[dict[str, Any]] = list(ds)
    elif p.suffix in (".jsonl", ".json"):
        text = p.read_text(encoding="utf-8")
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    elif p.suffix in (".csv", ".tsv", ".txt"):
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if p.suffix != ".csv" else ","))
    else:
        raise DataError(f"unsupported data file type {p.suffix!r} for {p}. Fix: use .csv, .tsv, .jsonl, .json "
                        "or a HF dataset folder.")
    if not rows:
        raise DataError(f"data file {p} has no rows.")
    found = sorted(rows[0])
    for col in (text_column, label_column):
        if col not in rows[0]:
            raise DataError(f"column {col!r} is not in {p}. Columns found: {found}. "
                            f"Fix: set text_column/label_column in the task to one of these.")
    return [str(r[text_column]) for r in rows], [str(r[label_column]) for r in rows]


def label_ids(*label_lists: list[str]) -> tuple[list[list[int]], list[str]]:
    names = sorted({l for ls in label_lists for l in ls}, key=lambda s: (not s.lstrip("-").isdigit(),
                                                                         int(s) if s.lstrip("-").isdigit() else 0, s))
    ix = {n: i for i, n in enumerate(names)}
    return [[ix[l] for l in ls] for ls in label_lists], names
