"""docs/speed.md carries exactly the table benchmarks/speed.py renders from benchmarks/results/speed.json: no number
in the doc is typed by hand (issue 17). Fast: json and string work only, no torch, no timing."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_speed():
    spec = importlib.util.spec_from_file_location("leanfit_bench_speed", ROOT / "benchmarks" / "speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_table_is_the_one_rendered_from_speed_json():
    speed = load_speed()
    data = json.loads((ROOT / "benchmarks" / "results" / "speed.json").read_text())
    table = speed.render_table(data)
    doc = (ROOT / "docs" / "speed.md").read_text()
    assert f"{speed.BEGIN}\n{table}\n{speed.END}" in doc, (
        "docs/speed.md's table is not the one speed.json gives. Fix: python benchmarks/speed.py --render")


def test_every_measured_section_has_a_row():
    speed = load_speed()
    res = json.loads((ROOT / "benchmarks" / "results" / "speed.json").read_text())["results"]
    rows = speed.table_rows(res)
    per_section = {"first_step": 2, "padding": 2, "frozen": 1, "step_time": 1, "config_error": 1,
                   "config_error_before": 1, "lr_find": 1}
    assert len(rows) == sum(n for k, n in per_section.items() if k in res)
    assert all(status in ("met", "**not met**", "—") for *_, status in rows)
