"""LR range test (Smith 1803.09820): the ramp, the smoothing, the steepest-slope suggestion, and the CLI."""
from __future__ import annotations

import math

import pytest

from leanfit.engine.errors import ConfigError
from leanfit.workflows.lr_find import lr_range_test, lr_schedule, plot, smooth, suggest_lr
from leanfit.engine.recipe import Recipe


def test_ramp_is_exponential():
    lrs = lr_schedule(1e-5, 1.0, 11)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(r == pytest.approx(10 ** 0.5) for r in ratios)


def test_smoothing_is_bias_corrected_ema():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    s = smooth([1.0, 3.0], beta=0.5)
    assert s[1] == pytest.approx((0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.25))


def test_suggestion_is_steepest_descent_point():
    lrs = lr_schedule(1e-6, 10.0, 71)
    # a sigmoid-shaped loss in log lr with its steepest drop at lr = 1e-2, then divergence
    losses = [2.0 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 2))) + (5 * (lr - 1) if lr > 1 else 0)
              for lr in lrs]
    assert math.log10(suggest_lr(lrs, losses)) == pytest.approx(-2.0, abs=0.11)
    with pytest.raises(ConfigError, match="lr-find curve"):
        suggest_lr(lrs[:4], losses[:4])


def test_range_test_on_digits_suggests_a_working_lr(tmp_path):
    r = Recipe.from_dict({"task": {"name": "digits-mlp", "n_train": 320}, "optimizer": "sgd",
                          "schedule": {"batch_size": 32}})
    res = lr_range_test(r, lr_min=1e-4, lr_max=10.0, steps=40)
    assert res.lrs[0] == pytest.approx(1e-4)
    assert 1e-3 < res.suggested_lr < 5.0
    assert min(res.losses) < res.losses[0]  # the loss did fall somewhere along the ramp
    p = plot(res, tmp_path / "lr.png")
    assert p.stat().st_size > 1000
    with pytest.raises(ConfigError, match="gradient optimizer"):
        lr_range_test(r.replace(optimizer={"name": "mezo"}), steps=10)


@pytest.mark.slow
def test_cli_lr_find(tmp_path):
    import subprocess
    import sys

    rec = tmp_path / "r.yaml"
    rec.write_text("task: {name: digits-mlp, n_train: 320}\noptimizer: adamw\n")
    out = subprocess.run([sys.executable, "-m", "leanfit.cli", "lr-find", str(rec), "--steps", "30",
                          "--plot", str(tmp_path / "p.png")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "suggested lr:" in out.stdout and (tmp_path / "p.png").exists()
