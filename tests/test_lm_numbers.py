"""docs/lm.md's measured tables are exactly what benchmarks/lm_tables.py renders from benchmarks/results/lm.json
(fast: no torch, no model), so the documented numbers cannot drift from the benchmark's output."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables_module():
    spec = importlib.util.spec_from_file_location("lm_tables", ROOT / "benchmarks" / "lm_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_tables_are_rendered_from_lm_json():
    t = _tables_module()
    doc = (ROOT / "docs" / "lm.md").read_text()
    assert doc.count(t.BEGIN) == 1 and doc.count(t.END) == 1, "docs/lm.md needs exactly one pair of table markers"
    expected = t.render(json.loads((ROOT / "benchmarks" / "results" / "lm.json").read_text()))
    assert t.between(doc) == expected, "docs/lm.md is out of date: run `python benchmarks/lm.py --assemble`"


def test_splice_replaces_only_between_markers():
    t = _tables_module()
    text = f"intro\n{t.BEGIN}\nold | 1 |\n{t.END}\noutro\n"
    new = t.splice(text, "| new | 2 |\n")
    assert new == f"intro\n{t.BEGIN}\n| new | 2 |\n{t.END}\noutro\n"
    assert t.between(new) == "| new | 2 |\n"
