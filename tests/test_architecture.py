"""The layout rules of DESIGN.md / issue 16, checked on the code: imports point down (import-linter contracts in
pyproject.toml), no cycles, methods never import the Trainer, no ``*_cli.py`` at the top, small modules and
functions, and a new method needs no list to be edited (discovery)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "leanfit"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_import_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_top_level_holds_only_the_layers():
    top = sorted(p.name for p in PKG.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py"], top
    dirs = sorted(p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert dirs == ["cli", "engine", "methods", "report", "study", "tasks", "workflows"], dirs


def _body_lines(fn: ast.FunctionDef) -> int:
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
    if not body or all(isinstance(b, (ast.FunctionDef, ast.ClassDef)) for b in body):
        return 0  # a container of definitions (a CLI group's register(app))
    return body[-1].end_lineno - body[0].lineno + 1


def test_modules_and_functions_are_small():
    big, long = [], []
    for p in PKG.rglob("*.py"):
        text = p.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big.append(f"{p.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {_body_lines(node)} lines")
    assert not big and not long, big + long


@pytest.mark.parametrize("axis", ["adapters", "compress", "optim", "data", "merge"])
def test_axis_packages_list_no_modules(axis):
    """Discovery finds method modules: an axis' __init__ imports nothing, so adding a method edits no list."""
    tree = ast.parse((PKG / "methods" / axis / "__init__.py").read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_cli_commands_are_discovered():
    from leanfit.cli import _load_command_modules, app

    _load_command_modules()
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    assert {"run", "list", "demo", "search", "report", "compress", "merge", "barrier", "lr-find"} <= names
