"""Shared by benchmark scripts: one JSON schema (run / results / meta), medians, and side-by-side timing."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def meta() -> dict[str, Any]:
    from leanfit.engine.result import environment

    return {**environment(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write(name: str, run: dict[str, Any], results: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps({"run": run, "results": results, "meta": meta()}, indent=2, default=str))
    return p


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))
