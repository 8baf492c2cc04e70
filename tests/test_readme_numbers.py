"""Every number in the README's result tables must come from benchmarks/results/*.json (issue 13: prose and data
cannot drift).

The tables checked are every markdown table under "## Methods and what they did here", the search table (under
"## Searching, and scaling out") and the overhead table (under "## Harness overhead and speed"). Each table is
preceded by a ``<!-- table:NAME sources:a.json,b.json -->`` marker (written by ``benchmarks/tables.py``); a
number in it passes if some numeric value of those JSON files, scaled the way tables show numbers (×1, ×100 for
percentages and accuracy points, k/M/G/T, KiB/MiB/GiB), rounds to it at the precision shown (93.0 ↔ 0.9302,
75.7k ↔ 75653, 0.98 ↔ 0.9812). A second test regenerates every table with ``benchmarks/tables.py`` and compares.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("## Methods and what they did here", "## Language models", "## Searching, and scaling out",
            "## Harness overhead and speed")
MARKER = re.compile(r"<!-- table:(?P<name>[\w-]+) sources:(?P<sources>[\w.,-]+) -->")
# a number as tables print it: sign (ASCII or U+2212), digits with thousands commas, decimals, exponent, suffix
NUMBER = re.compile(r"(?<![\w.])(?P<sign>[−+-]?)(?P<int>\d[\d,]*)(?P<frac>\.\d+)?(?P<exp>e[+−-]?\d+)?"
                    r"(?P<suffix>KiB|MiB|GiB|k|M|G|T|%|×| ?ms)?(?![\w.])")
SUFFIX = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "KiB": 1024.0, "MiB": 1024.0 ** 2, "GiB": 1024.0 ** 3,
          "ms": 1e-3}  # milliseconds shown for a JSON value in seconds
THRESHOLD = re.compile(r"[<>≤≥]\s*[\d.]+")  # a stated target ("≤ 1.03", "< 0.5 s") is a criterion, not a result
SCALES = (1.0, 100.0)  # 100: fractions shown as percent or accuracy points


def sections(text: str) -> list[str]:
    """The README text of the three sections (each up to the next '## ' heading)."""
    out = []
    for head in SECTIONS:
        i = text.index(head)
        j = text.find("\n## ", i + len(head))
        out.append(text[i: j if j >= 0 else len(text)])
    return out


def tables(text: str) -> list[tuple[str | None, list[str], list[str]]]:
    """(marker name, source files, data rows) of every markdown table in ``text``; the header row and the
    separator row are skipped."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            marker = None
            for k in range(i - 1, max(-1, i - 4), -1):  # the marker sits just above the table
                marker = MARKER.search(lines[k]) or marker
            name = marker["name"] if marker else None
            sources = marker["sources"].split(",") if marker else []
            found.append((name, sources, lines[i + 2: j]))
            i = j
        else:
            i += 1
    return found


def numbers_in(cell: str) -> list[tuple[float, float, float]]:
    """(value, half-unit of the last shown digit, suffix multiplier) for each number in a table cell."""
    cell = re.sub(r"`[^`]*`", lambda m: re.sub(r"\d", "", m.group(0)), cell)  # code names (`share_lora`) hold no data
    cell = re.sub(r"\[[^\]]*\]\([^)]*\)", "", cell)  # links
    cell = THRESHOLD.sub("", cell)
    cell = re.sub(r"(\d) (KiB|MiB|GiB)\b", r"\1\2", cell)  # "2,374 MiB" as "2,374MiB"
    out = []
    for m in NUMBER.finditer(cell):
        digits = m["int"].replace(",", "") + (m["frac"] or "")
        decimals = len(m["frac"]) - 1 if m["frac"] else 0
        value = float(digits)
        half = 0.5 * 10 ** -decimals
        if m["exp"]:
            e = int(m["exp"][1:].replace("−", "-"))
            value, half = value * 10 ** e, half * 10 ** e
        if m["sign"] in ("−", "-"):
            value = -value
        out.append((value, half, SUFFIX.get((m["suffix"] or "").strip(), 1.0)))
    return out


def json_values(files: list[str]) -> list[float]:
    vals: list[float] = []

    def walk(o):
        if isinstance(o, bool):
            return
        if isinstance(o, (int, float)):
            if math.isfinite(o):
                vals.append(float(o))
        elif isinstance(o, dict):
            for k, v in o.items():
                try:
                    vals.append(float(k))
                except ValueError:
                    pass
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for f in files:
        walk(json.loads((RESULTS / f).read_text()))
    return sorted(set(vals))


def found(value: float, half: float, mult: float, pool: list[float]) -> bool:
    import bisect

    tol = half * (1 + 1e-9) + 1e-12
    for scale in SCALES + ((mult,) if mult != 1.0 else ()):  # a unit may also be the JSON's own (peak_rss_mib)
        target = value * mult / scale  # the JSON value that would be shown as `value`
        width = tol * mult / scale
        i = bisect.bisect_left(pool, target - width)
        if i < len(pool) and pool[i] <= target + width:
            return True
    return False


def unmatched(readme: str) -> list[str]:
    bad, pools = [], {}
    for sec in sections(readme):
        for name, sources, rows in tables(sec):
            if name is None:
                bad.append(f"a table without a '<!-- table:NAME sources:... -->' marker: {rows[:1]}")
                continue
            key = tuple(sources)
            if key not in pools:
                pools[key] = json_values(sources)
            for row in rows:
                for cell in row.strip().strip("|").split("|"):
                    for value, half, mult in numbers_in(cell):
                        if not found(value, half, mult, pools[key]):
                            bad.append(f"table {name}: {value:g} in cell {cell.strip()!r} is not in {sources}")
    return bad


def test_every_readme_table_number_is_in_the_results_json():
    readme = README.read_text()
    n_tables = sum(len(tables(s)) for s in sections(readme))
    assert n_tables >= 9, f"expected the method, search and overhead tables, found {n_tables}"
    bad = unmatched(readme)
    assert not bad, "README numbers not found in benchmarks/results/*.json:\n" + "\n".join(bad)


def test_a_planted_wrong_number_fails():
    readme = README.read_text()
    i = readme.index("<!-- table:optim ")
    row_start = readme.index("\n| adamw |", i) + 1
    row_end = readme.index("\n", row_start)
    row = readme[row_start:row_end]
    planted = row.replace(" | ", " | 98.7654 | ", 1)  # a made-up number in the first data column
    assert unmatched(readme.replace(row, planted))
    assert unmatched(readme.replace("<!-- table:search ", "<!-- tabl:search ", 1))  # a table without its marker


def test_tables_match_a_fresh_regeneration():
    """README and docs tables are exactly what benchmarks/tables.py prints from the JSON."""
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "benchmarks" / "tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stale = mod.check()
    assert not stale, f"tables out of date (run python benchmarks/tables.py --write): {stale}"


@pytest.mark.parametrize("cell,expected", [("93.0", [(93.0, 0.05, 1.0)]), ("75.7k", [(75.7, 0.05, 1e3)]),
                                           ("−0.7 pts", [(-0.7, 0.05, 1.0)]), ("1.34e+12", [(1.34e12, 0.005e12, 1.0)]),
                                           ("`lora_xs` (ours)", []), ("3.2–3.7", [(3.2, 0.05, 1.0), (3.7, 0.05, 1.0)]),
                                           ("(2.1 ms step)", [(2.1, 0.05, 1e-3)]), ("≤ 1.03: met", []),
                                           ("< 0.5 s: met", [])])
def test_number_parsing(cell, expected):
    got = numbers_in(cell)
    assert len(got) == len(expected)
    for (v, h, m), (ev, eh, em) in zip(got, expected):
        assert v == pytest.approx(ev) and h == pytest.approx(eh) and m == em


def test_rounding_rules():
    pool = sorted([0.9302, 75653.0, 0.9812, -0.007])
    assert found(93.0, 0.05, 1.0, pool) and found(75.7, 0.05, 1e3, pool) and found(0.98, 0.005, 1.0, pool)
    assert found(-0.7, 0.05, 1.0, pool)
    assert not found(93.1, 0.05, 1.0, pool) and not found(75.6, 0.05, 1e3, pool) and not found(0.97, 0.005, 1.0, pool)
