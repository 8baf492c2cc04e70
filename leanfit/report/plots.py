"""PNG plots (matplotlib, Agg backend): accuracy vs a cost with the Pareto frontier highlighted."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..result import RunResult
from .pareto import pareto_front, value


def pareto_png(results: Sequence[RunResult], path: str | Path, cost: str = "trainable_params",
               metric: str = "accuracy", title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if r.status == "complete"]
    front = pareto_front(done, (cost,), metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([value(r, cost) for r in done], [100 * value(r, metric) for r in done], color="#999", zorder=2,
               label="runs")
    ax.plot([value(r, cost) for r in front], [100 * value(r, metric) for r in front], "o-", color="#c0392b",
            zorder=3, label="Pareto frontier")
    for r in done:
        ax.annotate(r.label, (value(r, cost), 100 * value(r, metric)), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(cost.replace("_", " ") + " (log)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title or f"{metric} vs {cost}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
