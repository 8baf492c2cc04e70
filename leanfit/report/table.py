"""Terminal tables of RunResults (rich). ★ marks Pareto-optimal rows (chosen on validation); ⚠ marks a run whose
predictions collapsed to one class or to the majority baseline. "val acc." is what searches choose on, "test acc."
the once-scored test split. "train mem." is the exact model-level memory (params + grads + optimizer state + saved
activations), "peak RSS" the process peak."""
from __future__ import annotations

from typing import Sequence

from ..engine.result import RunResult


def human(n: float, unit: str = "") -> str:
    """1234567 → '1.23M' (bytes: 'MiB'-style with unit='B')."""
    if unit == "B":
        for u in ("B", "KiB", "MiB", "GiB"):
            if abs(n) < 1024 or u == "GiB":
                return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
            n /= 1024
    for u, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= u:
            return f"{n / u:.3g}{s}"
    return f"{n:.4g}"


COLUMNS = (  # (header, key, formatter)
    ("val acc.", "accuracy", lambda v: f"{100 * v:.1f}%"),
    ("test acc.", "test_accuracy", lambda v: f"{100 * v:.1f}%"),
    ("val F1", "macro_f1", lambda v: f"{100 * v:.1f}%"),
    ("trainable", "trainable_params", lambda v: human(v)),
    ("opt. state", "optimizer_state_bytes", lambda v: human(v, "B")),
    ("train mem.", "train_memory_bytes", lambda v: human(v, "B")),
    ("peak RSS", "peak_rss_bytes", lambda v: human(v, "B")),
    ("FLOPs", "train_flops", lambda v: human(v)),
    ("samples", "samples_seen", lambda v: human(v)),
    ("time", "wall_time_s", lambda v: f"{v:.1f} s"),
)


def results_table(results: Sequence[RunResult], title: str = "", front: Sequence[RunResult] = ()):
    from rich.table import Table

    t = Table(title=title or None)
    t.add_column("recipe", no_wrap=True)
    t.add_column("status", no_wrap=True)
    for h, _, _ in COLUMNS:
        t.add_column(h, justify="right", no_wrap=True)
    front_ids = {id(r) for r in front}
    for r in results:
        cells = [_cell(r.value(k), fmt) for _, k, fmt in COLUMNS]
        name = ("★ " if id(r) in front_ids else "") + r.label + (f" [{r.recipe_id[:6]}]" if len(results) > 1 else "")
        t.add_row(name, r.status + (" ⚠" if r.flags else ""), *cells)
    return t


def _cell(v: float, fmt) -> str:
    return fmt(v) if v == v else "—"  # NaN: not measured (e.g. no test score for a stopped run)


def flag_notes(results: Sequence[RunResult]) -> list[str]:
    """One line per flagged run, for under a table."""
    from ..engine.metrics import flag_message

    out = []
    for r in results:
        for split in ("validation", "test"):
            fl = [f.split(":", 1)[-1] for f in r.flags if (f.startswith("test:") == (split == "test"))]
            if fl:
                out.append(f"⚠ {r.label}: {flag_message(fl, r.diagnostics.get(split, {}))} on {split}")
    return out


def print_results(results: Sequence[RunResult], title: str = "", front: Sequence[RunResult] = ()) -> None:
    from rich.console import Console

    con = Console()
    if not con.is_terminal:  # piped/CI output: do not squeeze the table into 80 columns
        con = Console(width=140)
    con.print(results_table(results, title, front))
    for r in front:  # what each frontier recipe is, hyperparameters included
        con.print(f"★ {r.label} [{r.recipe_id[:6]}]: {r.describe()}", style="dim", highlight=False)
    for line in flag_notes(results):
        con.print(line, style="yellow")


def estimates_table(rows) -> None:
    """The estimates of ``leanfit estimate`` (one row per recipe), with the memory verdict."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="estimate (before training; exact for fixed batch shapes)")
    for h in ("recipe", "trainable", "opt. state", "train mem.", "FLOPs/step", "train FLOPs", "steps", "step time",
              "forecast", "fits"):
        t.add_column(h, justify="right" if h != "recipe" else "left", no_wrap=True)
    for e in rows:
        t.add_row(e.label, human(e.trainable_params), human(e.optimizer_state_bytes, "B"),
                  human(e.train_memory_bytes, "B"), human(e.flops_per_step), human(e.train_flops), str(e.planned_steps),
                  f"{e.step_time_s:.3f} s", f"{e.wall_time_s:.1f} s",
                  ("yes" if e.fits else "NO") + f" (≤ {human(e.memory_limit_bytes, 'B')})")
    con = Console()
    if not con.is_terminal:
        con = Console(width=160)
    con.print(t)
