"""Self-contained HTML report (plotly, its JavaScript inlined: opens offline, mails as one file).

Sections: accuracy vs cost with every trial (completed, stopped, failed) and the Pareto frontier; learning curves
of every trial (stopped ones dashed, ending where they were stopped); a table of the Pareto set; and, when the
results span several tasks, AlgoPerf-style performance profiles (see profiles.py).
"""
from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Sequence

from ..engine.result import RunResult
from .pareto import pareto_front, value
from .profiles import Profiles

GROUPS = (  # (name in the legend, colour, marker, which runs)
    ("trials", "#7f8c8d", "circle", lambda r: r.status == "complete" and not r.extra.get("infeasible")),
    ("over budget", "#8e44ad", "diamond-open", lambda r: r.status == "complete" and r.extra.get("infeasible")),
    ("stopped (successive halving)", "#e67e22", "x", lambda r: r.status == "pruned"),
)


def _has(r: RunResult, key: str) -> bool:
    v = value(r, key)
    return v == v  # not NaN


def _hover(r: RunResult) -> str:
    test = f"<br>test {100 * r.test_accuracy:.2f}%" if r.test_metrics else ""
    flag = f"<br>⚠ {', '.join(r.flags)}" if r.flags else ""
    return f"{_html.escape(r.label)} [{r.recipe_id[:6]}]<br>{_html.escape(r.describe())}{test}{flag}"


def frontier_figure(results: Sequence[RunResult], cost: str = "train_flops", metric: str = "accuracy",
                    costs: Sequence[str] | None = None, title: str = ""):
    """Every run with a metric (a stopped run where it stopped: its partial cost and last eval) + the frontier."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, color, symbol, member in GROUPS:
        rs = [r for r in results if member(r) and _has(r, metric) and _has(r, cost)]
        if not rs:
            continue
        fig.add_trace(go.Scatter(
            x=[value(r, cost) for r in rs], y=[100 * value(r, metric) for r in rs], mode="markers", name=name,
            marker=dict(color=color, symbol=symbol, size=8, opacity=0.75),
            text=[_hover(r) for r in rs], hovertemplate="%{text}<br>%{x:.3g}, validation %{y:.2f}%"))
    front = pareto_front(results, tuple(costs or (cost,)), metric)
    front2d = pareto_front(front, (cost,), metric) if front else []
    if front2d:
        fig.add_trace(go.Scatter(x=[value(r, cost) for r in front2d], y=[100 * value(r, metric) for r in front2d],
                                 mode="lines+markers", name="Pareto frontier", line=dict(color="#c0392b", width=2),
                                 marker=dict(size=10), text=[_hover(r) for r in front2d],
                                 hovertemplate="%{text}<br>%{x:.3g}, validation %{y:.2f}%"))
    fig.update_layout(title=title or f"{metric} vs {cost}", xaxis_title=f"{cost} (log)",
                      yaxis_title=f"validation {metric} (%)",
                      xaxis_type="log", template="plotly_white", height=460)
    return fig


def curves_figure(results: Sequence[RunResult], x: str = "flops", metric: str = "accuracy", title: str = ""):
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in results:
        pts = [p for p in r.curve if metric in p and x in p]
        if not pts:
            continue
        fig.add_trace(go.Scatter(x=[p[x] for p in pts], y=[100 * p[metric] for p in pts], mode="lines+markers",
                                 name=f"{r.label} [{r.recipe_id[:6]}] ({r.status})", legendgroup=r.recipe_id,
                                 line=dict(dash="dash" if r.status == "pruned" else "solid"),
                                 hovertext=r.describe(), opacity=0.8, showlegend=len(results) <= 30))
    fig.update_layout(title=title or f"learning curves: {metric} vs train {x}", xaxis_title=f"train {x}",
                      yaxis_title=f"{metric} (%)", template="plotly_white", height=460)
    return fig


def objectives_figure(results: Sequence[RunResult], metric: str, costs: Sequence[str], title: str = ""):
    """Every objective of the search, all trials at once: parallel coordinates (stopped trials at their last eval,
    coloured apart)."""
    import plotly.graph_objects as go

    rs = [r for r in results if r.status in ("complete", "pruned") and _has(r, metric)]
    dims = [dict(label=f"validation {metric}", values=[value(r, metric) for r in rs])]
    dims += [dict(label=c, values=[value(r, c) for r in rs]) for c in costs if all(_has(r, c) for r in rs)]
    dims.append(dict(label="stopped", values=[int(r.status == "pruned") for r in rs], tickvals=[0, 1],
                     ticktext=["complete", "stopped"]))
    fig = go.Figure(go.Parcoords(line=dict(color=[value(r, metric) for r in rs], colorscale="Viridis",
                                           showscale=True), dimensions=dims))
    fig.update_layout(title=title or "every objective, every trial", template="plotly_white", height=420)
    return fig


def _trials_table(results: Sequence[RunResult], metric: str, costs: Sequence[str]) -> str:
    """Every trial with its hyperparameters, best validation first."""
    cols = ("recipe", "id", "status", f"validation {metric}", f"test {metric}", *costs, "hyperparameters")
    rows = []
    for r in sorted(results, key=lambda r: -value(r, metric) if _has(r, metric) else 1e9):
        test = value(r, f"test_{metric}")
        cells = [r.label, r.recipe_id[:6], r.status + (" ⚠" if r.flags else ""),
                 f"{100 * value(r, metric):.2f}%" if _has(r, metric) else "—",
                 f"{100 * test:.2f}%" if test == test else "—",
                 *(f"{value(r, c):.4g}" if _has(r, c) else "—" for c in costs), r.describe()]
        rows.append("<tr>" + "".join(f"<td>{_html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in cols)
    return f"<details><summary>all {len(rows)} trials</summary><table><thead><tr>{head}</tr></thead>" \
           f"<tbody>{''.join(rows)}</tbody></table></details>"


def profiles_figure(p: Profiles):
    import plotly.graph_objects as go

    fig = go.Figure()
    for s, score in p.ranking():
        fig.add_trace(go.Scatter(x=p.taus, y=p.curves[s], mode="lines", line_shape="hv",
                                 name=f"{s} (score {score:.3f})"))
    fig.update_layout(title=f"performance profiles ({p.time_key} to target; targets "
                            f"{', '.join(f'{t} {100 * v:.1f}%' for t, v in p.targets.items())})",
                      xaxis_title="τ (ratio to the fastest)", yaxis_title="ρ(τ): fraction of tasks within τ",
                      yaxis_range=[0, 1.05], template="plotly_white", height=460)
    return fig


def _table(front: Sequence[RunResult], costs: Sequence[str], metric: str) -> str:
    """The Pareto set (chosen on validation) with its test numbers beside."""
    cols = ("recipe", "task", f"validation {metric}", f"test {metric}", *costs, "flags")
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in cols)
    rows = []
    for r in front:
        test = value(r, f"test_{metric}")
        cells = [r.label, r.task, f"{100 * value(r, metric):.2f}%", f"{100 * test:.2f}%" if test == test else "—",
                 *(f"{value(r, c):.4g}" for c in costs), ", ".join(r.flags) or ""]
        rows.append("<tr>" + "".join(f"<td>{_html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def study_html(results: Sequence[RunResult], path: str | Path, costs: Sequence[str] = ("train_flops",),
               metric: str = "accuracy", title: str = "leanfit report", profiles: Profiles | None = None) -> Path:
    """Write one self-contained HTML file (plotly.js inlined once) and return its path."""
    import plotly.io as pio

    tasks = sorted({r.task for r in results})
    figs = []
    for task in tasks:
        rs = [r for r in results if r.task == task]
        figs.append((f"{task}: {metric} vs {costs[0]}", frontier_figure(rs, costs[0], metric, costs, title=task)))
        figs.append((f"{task}: learning curves", curves_figure(rs, "flops", metric)))
        if len(costs) > 1 or len(rs) > 2:
            figs.append((f"{task}: every objective", objectives_figure(rs, metric, costs)))
    if profiles is not None and len(profiles.targets) > 1:
        figs.append(("performance profiles", profiles_figure(profiles)))
    parts = []
    for i, (heading, fig) in enumerate(figs):
        div = pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"leanfit-plot-{i}",
                          config={"displaylogo": False})
        parts.append(f"<h2>{_html.escape(heading)}</h2>\n{div}")
    front = [r for t in tasks for r in pareto_front([x for x in results if x.task == t], tuple(costs), metric)]
    n = {s: sum(r.status == s for r in results) for s in ("complete", "pruned", "failed")}
    summary = (f"{len(results)} runs on {len(tasks)} task(s): {n['complete']} complete, {n['pruned']} stopped early, "
               f"{n['failed']} failed. Pareto set chosen on validation {metric} ↑ and {', '.join(costs)} ↓, "
               f"with each run's test {metric} (scored once, after training):")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}</style>
</head><body>
<h1>{_html.escape(title)}</h1>
<p>{_html.escape(summary)}</p>
{_table(front, costs, metric)}
{_trials_table(results, metric, costs)}
{''.join(parts)}
</body></html>
"""
    path = Path(path)
    path.write_text(doc, encoding="utf-8")
    return path
