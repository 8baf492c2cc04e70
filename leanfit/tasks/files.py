"""Readers of users' data files: CSV, TSV, JSONL/JSON, or a local Hugging Face dataset folder, into two columns
(texts and labels, or prompts and completions), with named errors for everything a file can get wrong: missing
file, unsupported type, not UTF-8, a bad JSONL line, a missing column, a row without a value in it.

``check_labels`` (called by ``label_ids``, i.e. by every classification task) adds what a classifier needs:
no empty or NaN labels, and at least two classes."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..engine.errors import DataError, MissingExtraError

MAX_ROWS_SHOWN = 5


def read_table(path: str | Path, text_column: str = "text", label_column: str = "label") -> tuple[list[str], list[str]]:
    """Read (texts, raw labels) from CSV, TSV, JSONL/JSON, or a local HF dataset folder (save_to_disk). Every row
    must have both columns (a value, not null); what the values must be is the caller's rule (``check_labels``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {str(p)!r} does not exist. Fix: check the path.")
    if p.is_dir():
        numbered = list(enumerate(_read_hf_folder(p), start=1))
    elif p.suffix in (".jsonl", ".json"):
        numbered = _read_json(p, _read_text(p))
    elif p.suffix in (".csv", ".tsv", ".txt"):
        numbered = _read_csv(p, _read_text(p))
    else:
        raise DataError(f"unsupported data file type {p.suffix!r} for {p}. Fix: use .csv, .tsv, .jsonl, .json "
                        "or a HF dataset folder.")
    if not numbered:
        raise DataError(f"data file {p} has no rows. Fix: give a file with a header and at least two classes of rows.")
    first = numbered[0][1]
    for col in (text_column, label_column):
        if col not in first:
            raise DataError(f"column {col!r} is not in {p}. Columns found: {sorted(map(str, first))}. "
                            f"Fix: set text_column/label_column in the task to one of these.")
    for col in (label_column, text_column):
        lacking = [n for n, r in numbered if r.get(col) is None]
        if lacking:
            raise DataError(f"{p}: every row needs a value in column {col!r}, but {len(lacking)} row(s) lack it "
                            f"(missing or null) at line(s) {_lines(lacking)}. Fix: fill those rows in or remove them; "
                            "leanfit neither guesses values nor drops rows silently.")
    return [str(r[text_column]) for _, r in numbered], [_label_text(r[label_column]) for _, r in numbered]


def _read_csv(p: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """CSV/TSV rows with the line each ends on (quoted fields may span lines)."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if p.suffix != ".csv" else ",")
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise DataError(f"data file {p} is not valid {p.suffix[1:].upper()} at line {reader.line_num}: {e}. "
                        "Fix: check the quoting there.") from None


def _read_text(p: Path) -> str:
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[:e.start].count(b"\n") + 1
        raise DataError(f"data file {p} must be UTF-8, but byte {e.object[e.start]:#04x} on line {line} is not "
                        f"(Latin-1 or Windows-1252?). Fix: re-save it as UTF-8, e.g. "
                        f"iconv -f latin1 -t utf-8 {p.name} > utf8-{p.name}.") from None


def _read_json(p: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """A JSON array of objects, or JSONL (one object per line); a bad line is named by its number."""
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"data file {p} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}. "
                            "Fix: correct it there.") from None
        numbered = list(enumerate(rows, start=1))
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"data file {p}: line {n} is not valid JSON ({e.msg}, column {e.colno}). Fix: JSONL "
                                "needs one complete JSON object per line; correct or remove that line.") from None
    for n, row in numbered:
        if not isinstance(row, dict):
            raise DataError(f"data file {p}: row {n} must be a JSON object {{\"text\": ..., \"label\": ...}}, but got "
                            f"{type(row).__name__}. Fix: write one object per row.")
    return numbered


def _read_hf_folder(p: Path) -> list[dict[str, Any]]:
    try:
        import datasets  # optional
    except ImportError:
        raise MissingExtraError("reading a HF dataset folder needs `datasets`. Fix: pip install datasets") from None
    try:
        ds = datasets.load_from_disk(str(p))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"{p} is a folder but not a saved Hugging Face dataset ({e}). Fix: give a CSV/TSV/JSONL "
                        "file, or a folder written by Dataset.save_to_disk.") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"]
    return list(ds)


def _label_text(v: Any) -> str:
    """Values as text, with 1 and 1.0 the same class (JSON numbers, pandas-written floats) and NaN as 'nan'."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return str(v).strip()


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:MAX_ROWS_SHOWN]))
    return shown + (f" and {len(numbers) - MAX_ROWS_SHOWN} more" if len(numbers) > MAX_ROWS_SHOWN else "")


def check_labels(labels: list[str], where: str = "the training data", min_classes: int = 2) -> None:
    """What a classifier needs of its labels: none empty or NaN (they would become the classes '' and 'nan'), and
    at least ``min_classes`` classes (one-class data reports 100% accuracy and teaches nothing)."""
    empty = [i + 1 for i, label in enumerate(labels) if label.strip().lower() in ("", "nan")]
    if empty:
        raise DataError(f"{where}: every row needs a label, but {len(empty)} row(s) have an empty or NaN one: data "
                        f"row(s) {_lines(empty)} (counting from 1, a header excluded). Fix: label those rows or "
                        "remove them; leanfit neither guesses labels nor drops rows silently.")
    classes = sorted(set(labels))
    if len(classes) < min_classes:
        raise DataError(f"{where} must have at least {min_classes} classes, but all {len(labels)} rows have the label "
                        f"{classes[0] if classes else None!r}. Fix: check label_column, or add rows of other classes.")


def label_ids(*label_lists: list[str]) -> tuple[list[list[int]], list[str]]:
    """Class ids for label lists (the first is the training data, which must have ≥ 2 classes; the others are
    held-out files), sorted with integer-looking labels in numeric order."""
    for i, labels in enumerate(label_lists):
        check_labels(labels, "the training data" if i == 0 else f"held-out labels (file {i + 1} of "
                     f"{len(label_lists)})", 2 if i == 0 else 0)
    names = sorted({l for ls in label_lists for l in ls}, key=lambda s: (not s.lstrip("-").isdigit(),
                                                                         int(s) if s.lstrip("-").isdigit() else 0, s))
    ix = {n: i for i, n in enumerate(names)}
    return [[ix[l] for l in ls] for ls in label_lists], names
