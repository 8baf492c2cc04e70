"""docs/models.md's "Measured" tables are exactly what benchmarks/models.py renders from
benchmarks/results/models.json (issue 15): no number in them is typed by hand or left stale. Fast: no training."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_tables_are_rendered_from_the_results():
    m = _bench()
    data = json.loads((ROOT / "benchmarks" / "results" / "models.json").read_text())
    doc = (ROOT / "docs" / "models.md").read_text()
    assert doc.count(m.BEGIN) == 1 and doc.count(m.END) == 1
    block = doc.split(m.BEGIN, 1)[1].split(m.END, 1)[0]
    assert block.strip() == m.tables(data).strip()


def test_results_cover_the_issue():
    data = json.loads((ROOT / "benchmarks" / "results" / "models.json").read_text())
    res = data["results"]
    tasks = {r["task"].split(" ")[0] for r in res["estimate"]}
    assert {"digits-mlp", "mnist1d-cnn", "minilm-bbc", "lm-arithmetic", "lm-bbc-topic"} <= tasks
    for t in tasks:
        assert len({r["method"] for r in res["estimate"] if r["task"].startswith(t)}) >= 5, t
    assert {"lora", "lora_xs", "ia3", "full"} <= {p["method"] for p in res["parity"] if p["model"].startswith("MiniLM")}
