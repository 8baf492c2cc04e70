"""Honest splits of text data: exact duplicates removed before splitting, and rows of a held-out file that also
appear in train dropped from it, each with its count reported (a row seen in training and scored as held-out
inflates the score)."""
from __future__ import annotations

from dataclasses import dataclass, field


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
