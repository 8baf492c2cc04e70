"""docs/CONTRIBUTING.md stays true: each worked example is a complete module that registers a method with one
decorator, and the method then works by name through the registry, a recipe and the Trainer."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONTRIBUTING.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)

CHECKS = {
    "adapters": """
        import torch
        from torch import nn
        from leanfit.engine import registry
        from leanfit.engine.task import Task
        model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        task = Task("t", lambda s: model, *[{"labels": torch.zeros(1)}] * 3, 2, head=("2",))
        a = registry.get("adapters", "ln_gain").build({})
        expected = a.param_formula(model, task)
        m = a.apply(model, task)
        assert sum(p.numel() for p in m.parameters() if p.requires_grad) == expected == 8 + 18
    """,
    "optim": """
        from leanfit import Recipe, run_recipe
        r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "optimizer": {"name": "signsgd_example", "lr": 1e-3},
                                         "schedule": {"epochs": 2, "batch_size": 64}}))
        assert r.status == "complete" and r.metrics["accuracy"] > 0.8, r.metrics
    """,
    "data": """
        from leanfit import Recipe, run_recipe
        r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "data": {"name": "shortest_example", "fraction": 0.5},
                                         "schedule": {"epochs": 1, "batch_size": 64}}))
        from leanfit.engine.task import build_task
        n = build_task("digits-mlp").n_train
        assert r.extra["data_kept_rows"] == r.costs["samples_seen"] == round(0.5 * n), (r.extra, n)
    """,
    "compress": """
        from leanfit import Recipe, run_recipe
        r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "compress": [{"name": "bf16_round_example"}],
                                         "schedule": {"epochs": 1, "batch_size": 64}}))
        assert r.extra["compress"][0]["bits"] == 16 and r.metrics["accuracy"] > 0.5
    """,
    "merge": """
        import torch
        from leanfit.engine import registry
        sds = [{"w": torch.tensor([float(i), 10.0 - i])} for i in (1, 5, 2)]
        out = registry.get("merge", "median_example").build({}).merge(None, sds)
        assert torch.equal(out["w"], torch.tensor([2.0, 8.0]))
    """,
}


def test_one_example_per_axis():
    axes = [re.search(r'@register\("(\w+)"', b).group(1) for b in BLOCKS]
    assert sorted(axes) == sorted(CHECKS), axes


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: re.search(r'@register\("(\w+)"', b).group(1))
def test_example_registers_and_runs(block, tmp_path):
    axis = re.search(r'@register\("(\w+)"', block).group(1)
    (tmp_path / "example_method.py").write_text(block)
    script = "import example_method\n" + textwrap.dedent(CHECKS[axis])
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
