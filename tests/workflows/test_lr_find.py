"""LR range test (Smith 1803.09820): the ramp, the smoothing, the steepest-slope suggestion, and the CLI."""
from __future__ import annotations

import math

import pytest

from leanfit.engine.errors import ConfigError
from leanfit.workflows.lr_find import lr_range_test, lr_schedule, plot, smooth, suggest_lr
from leanfit.engine.recipe import Recipe
from leanfit.engine.task import Task


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


class _QuadraticTask(Task):
    """Least squares with one weight: loss ½·a·w² (x = √a, y = 0). Plain SGD gives w ← (1 − lr·a)·w, so the
    best LR is 1/a (one step to the minimum), the loss falls for lr < 2/a and grows above it."""

    def per_sample_loss(self, outputs, batch):
        return 0.5 * (outputs.squeeze(-1) - batch["labels"]) ** 2


def _quadratic(curvature: float = 4.0) -> Task:
    import torch

    data = {"x": torch.full((32, 1), curvature ** 0.5), "labels": torch.zeros(32)}

    def build(seed):
        m = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(m.weight)
        return m

    return _QuadraticTask("quadratic", build, data, data, data, 1, head=(), forward=lambda m, b: m(b["x"]))


def test_range_test_on_a_quadratic_follows_the_closed_form(monkeypatch):
    """Through the real code path (recipe → Trainer with the ramp callback), on a problem whose loss curve is known
    in closed form: raw loss at step k = ½a·Π_{j<k}(1 − lr_j·a)², the bias-corrected EMA (β = 0.98), the stop at
    4× the smoothed minimum, and the steepest central-difference slope against log lr, all written out here."""
    import sys
    import types

    a, lr_min, lr_max, steps, beta = 4.0, 1e-4, 1e2, 50, 0.98
    mod = types.ModuleType("lrfind_quadratic_task")
    mod.quadratic = _quadratic
    monkeypatch.setitem(sys.modules, "lrfind_quadratic_task", mod)
    monkeypatch.setenv("LEANFIT_ALLOW_CODE", "1")  # the task is named as module:function: opt in explicitly
    r = Recipe.from_dict({"task": {"name": "lrfind_quadratic_task:quadratic", "curvature": a}, "adapter": "full",
                          "optimizer": {"name": "sgd", "momentum": 0.0}, "schedule": {"batch_size": 32}})
    res = lr_range_test(r, lr_min=lr_min, lr_max=lr_max, steps=steps, beta=beta)

    lrs = [lr_min * (lr_max / lr_min) ** (k / (steps - 1)) for k in range(steps)]
    raw, sm, w, avg, best, stop = [], [], 1.0, 0.0, math.inf, None
    for k, lr in enumerate(lrs):
        raw.append(0.5 * a * w * w)
        avg = beta * avg + (1 - beta) * raw[-1]
        sm.append(avg / (1 - beta ** (k + 1)))
        best = min(best, sm[-1])
        if sm[-1] > 4 * best:
            stop = k
            break
        w *= 1 - lr * a
    assert stop is not None and len(res.lrs) == stop + 1 and res.diverged_at == pytest.approx(lrs[stop])
    assert res.lrs == pytest.approx(lrs[:stop + 1], rel=1e-12)
    assert res.raw_losses == pytest.approx(raw, rel=1e-4, abs=1e-7)  # the LR of step k was applied at step k
    slope = {k: (sm[k + 1] - sm[k - 1]) / (math.log(lrs[k + 1]) - math.log(lrs[k - 1])) for k in range(4, stop)}
    k_best = min(slope, key=slope.get)
    assert sorted(slope.values())[1] > slope[k_best] * (1 - 1e-3)  # no near-tie: the expected point is unambiguous
    assert res.suggested_lr == pytest.approx(lrs[k_best], rel=1e-12)
    # and it is a good LR for this problem: below the optimum 1/a, within 10× of it; divergence only above 2/a
    assert 0.1 / a < res.suggested_lr < 1 / a < 2 / a < res.diverged_at
    assert res.suggested_lr < res.min_loss_lr


def test_range_test_on_digits_suggests_a_working_lr(tmp_path):
    r = Recipe.from_dict({"task": {"name": "digits-mlp", "n_train": 320}, "optimizer": "sgd",
                          "schedule": {"batch_size": 32}})
    res = lr_range_test(r, lr_min=1e-4, lr_max=10.0, steps=40)
    assert res.lrs[0] == pytest.approx(1e-4)
    # SGD with momentum 0.9 on digits: suggested 0.52 (2 epochs at 0.05–0.5 train to 0.64–0.69; 2.3 diverges to
    # chance). The steepest fall lies below the loss minimum, which lies below the divergence point.
    assert 0.1 < res.suggested_lr < 1.5
    assert res.suggested_lr < res.min_loss_lr < res.diverged_at
    assert min(res.losses) < 0.9 * res.losses[0]  # the smoothed loss fell (2.34 → 1.96) before diverging
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
