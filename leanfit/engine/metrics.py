"""What an evaluation returns, and the classifier metrics.

``Evaluation.metrics`` holds the scalars that runs, curves, searches and tables use (``accuracy`` ↑, ``eval_loss``
↓, ``macro_f1`` ↑); ``details`` the structured numbers (per-class precision / recall / F1 / support, the confusion
matrix, the majority-class baseline); ``flags`` short warnings a table shows next to the run.

Per-class precision/recall/F1 and the confusion matrix come from scikit-learn (``precision_recall_fscore_support``,
``confusion_matrix``), with ``zero_division=0`` for a class that is never predicted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

COLLAPSED = "collapsed"  # every prediction is the same class
AT_BASELINE = "at_baseline"  # accuracy no better than always predicting the most frequent class


@dataclass
class Evaluation:
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def classification_evaluation(logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                              names: Sequence[str] | None = None) -> Evaluation:
    """Metrics of ``logits`` [n, C] against ``labels`` [n]."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n = len(labels)
    pred = logits.argmax(-1)
    classes = list(range(num_classes))
    y, p = labels.numpy(), pred.numpy()
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=classes, zero_division=0)
    present = support > 0  # macro-F1 over the classes the split holds
    accuracy = int((pred == labels).sum()) / n if n else float("nan")  # exact, comparable with the baseline
    loss = float(torch.nn.functional.cross_entropy(logits, labels, reduction="mean")) if n else float("nan")
    majority = float(torch.bincount(labels, minlength=num_classes).max()) / n if n else float("nan")
    names = list(names) if names else [str(c) for c in classes]
    ev = Evaluation(
        metrics={"accuracy": accuracy, "eval_loss": loss,
                 "macro_f1": float(f1[present].mean()) if present.any() else float("nan")},
        details={"labels": names, "majority_baseline": majority, "rows": n,
                 "per_class": {names[c]: {"precision": float(prec[c]), "recall": float(rec[c]), "f1": float(f1[c]),
                                          "support": int(support[c])} for c in classes},
                 "confusion": confusion_matrix(y, p, labels=classes).tolist()})
    ev.flags = collapse_flags(pred, accuracy, majority, names)
    return ev


def collapse_flags(pred: torch.Tensor, accuracy: float, majority: float, names: Sequence[str]) -> list[str]:
    """``collapsed`` when every prediction is one class; ``at_baseline`` when accuracy ≤ the majority baseline."""
    flags = []
    if len(pred) and len(pred.unique()) == 1:
        flags.append(COLLAPSED)
    if len(pred) and accuracy <= majority + 1e-9:
        flags.append(AT_BASELINE)
    return flags


def flag_message(flags: Sequence[str], details: dict[str, Any]) -> str:
    """A sentence for the run output, e.g. 'predicts one class only; accuracy at the majority baseline 0.866'."""
    parts = []
    if COLLAPSED in flags:
        parts.append("predicts one class only")
    if AT_BASELINE in flags:
        parts.append(f"accuracy at or below the majority-class baseline {details.get('majority_baseline', 0):.3f}")
    return "; ".join(parts)
