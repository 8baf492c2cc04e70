"""Honest splits of text data: exact duplicates removed before splitting, rows of a held-out file that also appear
in train dropped from it (each with its count reported: a row seen in training and scored as held-out inflates
the score), missing splits carved from train (stratified, fixed seeds), and seeded stratified subsampling."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..engine.task import stratified_split, three_way_split

Split = tuple[list[str], list[int]]  # (texts, label ids)


def data_name(kind: str, path: str) -> str:
    """A user task's default identity: the kind, the training file's stem and a hash of its bytes — two data sets
    never share a name (frontiers, tables and dashboards group runs by task name)."""
    import hashlib
    from pathlib import Path

    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(str(p.resolve()).encode())
    return f"{kind}:{p.stem}-{h.hexdigest()[:6]}"


def normalise(text: str) -> str:
    """The key two texts are duplicates by: whitespace and case folded (uncased encoders such as MiniLM see such
    texts as the same input; the corpora's copies differ only in spacing, line breaks or capitals)."""
    return " ".join(text.split()).casefold()


def dedupe(texts: list[str], labels: list) -> tuple[list[str], list, int]:
    """Keep the first of each group of exact-duplicate texts (after ``normalise``); returns (texts, labels,
    number removed)."""
    seen: set[str] = set()
    keep = []
    for i, t in enumerate(texts):
        k = normalise(t)
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return [texts[i] for i in keep], [labels[i] for i in keep], len(texts) - len(keep)


def drop_overlap(held_texts: list[str], held_labels: list, train_texts: list[str]) -> tuple[list[str], list, int]:
    """Drop from a held-out split every text that is also in train; returns (texts, labels, number dropped)."""
    train = {normalise(t) for t in train_texts}
    keep = [i for i, t in enumerate(held_texts) if normalise(t) not in train]
    return [held_texts[i] for i in keep], [held_labels[i] for i in keep], len(held_texts) - len(keep)


@dataclass
class SplitReport:
    """What was done to the data, for the task description and the RunResult."""

    duplicates_removed: int = 0
    overlap_dropped: dict[str, int] = field(default_factory=dict)  # split → rows dropped (also in train/validation)
    carved: dict[str, str] = field(default_factory=dict)  # split → how it was made when no file was given

    def text(self) -> str:
        parts = [f"{self.duplicates_removed} exact-duplicate texts removed before splitting"]
        parts += [f"{n} {s} rows also in {'train' if s == 'validation' else 'train or validation'} dropped"
                  for s, n in self.overlap_dropped.items()]
        parts += [f"{s} {how}" for s, how in self.carved.items()]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"duplicates_removed": self.duplicates_removed, "overlap_dropped": dict(self.overlap_dropped),
                "carved": dict(self.carved)}


def _subsample(idx: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Stratified, seeded subsample of ``idx`` to at most n rows."""
    if n is None or n >= len(idx):
        return idx
    keep, _ = stratified_split(labels[idx], 1 - n / len(idx), seed)
    if len(keep) > n:  # per-class rounding can overshoot by a few rows
        keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n]].sort().values
    return idx[keep]


def _pick(split: Split, ids: torch.Tensor) -> Split:
    return [split[0][i] for i in ids.tolist()], [split[1][i] for i in ids.tolist()]


def carve(data: dict[str, Split], report: SplitReport, validation_fraction: float, test_fraction: float) -> None:
    """Make the missing validation/test splits from train, stratified with fixed seeds, and say so."""
    texts, y = data["train"]
    yt = torch.tensor(y)
    missing = [s for s in ("validation", "test") if s not in data]
    if missing == ["validation", "test"]:
        tr, val, te = three_way_split(yt, validation_fraction, test_fraction, seed=0)
        data["validation"], data["test"] = _pick((texts, y), val), _pick((texts, y), te)
    elif missing:
        frac = validation_fraction if missing[0] == "validation" else test_fraction
        tr, held = stratified_split(yt, frac, seed=0 if missing[0] == "test" else 1)
        data[missing[0]] = _pick((texts, y), held)
    else:
        return
    data["train"] = _pick((texts, y), tr)
    for m in missing:
        frac = validation_fraction if m == "validation" else test_fraction
        report.carved[m] = f"carved from train ({frac:.0%}, stratified, fixed seed)"


def make_splits(data: dict[str, Split], report: SplitReport, sizes: dict[str, Any], validation_fraction: float = 0.1,
                test_fraction: float = 0.2) -> dict[str, Split]:
    """Text-level splits: drop held-out rows that are also in train (and test rows also in validation), carve what
    is missing, and subsample to ``sizes`` (n_train, n_validation, n_test)."""
    seen = list(data["train"][0])
    for split in ("validation", "test"):
        if split in data:
            texts, y, dropped = drop_overlap(*data[split], seen)
            data[split] = (texts, y)
            seen += texts
            if dropped:
                report.overlap_dropped[split] = dropped
    carve(data, report, validation_fraction, test_fraction)
    for seed, split in enumerate(("train", "validation", "test"), start=1):
        y = torch.tensor(data[split][1])
        data[split] = _pick(data[split], _subsample(torch.arange(len(y)), y, sizes.get(f"n_{split}"), seed))
    return data
