"""PNG plots (matplotlib, Agg backend): accuracy vs a cost with the Pareto frontier highlighted."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from ..engine.result import RunResult
from .pareto import pareto_front, value

if TYPE_CHECKING:
    from .profiles import Profiles


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
    _draw_frontier(ax, front, done, cost, metric, title, fontsize=8)
    return _save(fig, path)


def _draw_frontier(ax, front: Sequence[RunResult], labelled: Sequence[RunResult], cost: str, metric: str,
                   title: str, fontsize: int) -> None:
    """The frontier line, run labels and the shared axis styling of every accuracy-vs-cost panel."""
    ax.plot([value(r, cost) for r in front], [100 * value(r, metric) for r in front], "o-", color="#c0392b",
            zorder=3, label="Pareto frontier")
    for r in labelled:
        ax.annotate(r.label, (value(r, cost), 100 * value(r, metric)), fontsize=fontsize, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(cost.replace("_", " ") + " (log)")
    ax.set_ylabel(f"validation {metric} (%)")
    ax.set_title(title or f"{metric} vs {cost}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=fontsize)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def study_png(results: Sequence[RunResult], path: str | Path, cost: str = "train_flops", metric: str = "accuracy",
              costs: Sequence[str] | None = None, title: str = "") -> Path:
    """Two panels: every trial (stopped ones as ×) with the Pareto frontier, and every learning curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    for status, color, marker, lab in (("complete", "#7f8c8d", "o", "trials"), ("pruned", "#e67e22", "x", "stopped")):
        rs = [r for r in results if r.status == status and metric in r.metrics and cost in r.costs]  # validation
        if rs:
            ax.scatter([value(r, cost) for r in rs], [100 * value(r, metric) for r in rs], c=color, marker=marker,
                       label=lab, zorder=2)
    front = pareto_front(results, tuple(costs or (cost,)), metric)
    front = pareto_front(front, (cost,), metric) if front else []
    _draw_frontier(ax, front, front, cost, metric, title, fontsize=7)
    for r in results:
        pts = [p for p in r.curve if metric in p]
        if pts:
            ax2.plot([p["flops"] for p in pts], [100 * p[metric] for p in pts], "--" if r.status == "pruned" else "-",
                     alpha=0.6, lw=1)
    ax2.set_xlabel("train FLOPs")
    ax2.set_ylabel(f"{metric} (%)")
    ax2.set_title("learning curves (dashed: stopped early)")
    ax2.grid(alpha=0.3)
    return _save(fig, path)


def profiles_png(profiles: "Profiles", path: str | Path) -> Path:
    """ρ_s(τ) step curves of an AlgoPerf-style performance profile (see profiles.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for s, score in profiles.ranking():
        ax.step(profiles.taus, profiles.curves[s], where="post", label=f"{s} ({score:.3f})")
    ax.set_xlabel("τ (time-to-target ratio to the fastest)")
    ax.set_ylabel("fraction of tasks with ratio ≤ τ")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"performance profiles ({profiles.time_key})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for label, c in curves.items():
        axes[0].plot(c["alpha"], c["loss"], marker="o", label=label)
        axes[1].plot(c["alpha"], c["accuracy"], marker="o", label=label)
    axes[0].set(xlabel="α (0 = A, 1 = B)", ylabel="eval loss")
    axes[1].set(xlabel="α (0 = A, 1 = B)", ylabel="eval accuracy")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
