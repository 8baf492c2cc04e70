"""Contract tests for every registered data selector (generated from the registry): returned indices are valid,
unique where the method promises it, deterministic for a seed, the kept fraction is honoured, weights are sane,
scoring cost is counted, and the method changes something."""
from __future__ import annotations

import math

import pytest
import torch

from leanfit.engine import registry
from leanfit.engine.callbacks import Callback
from leanfit.engine.errors import ConfigError
from leanfit.engine.recipe import Schedule
from leanfit.engine.task import build_task
from leanfit.engine.trainer import Trainer

METHODS = [e.name for e in registry.list_methods("data")]


# Selectors that score rows with a proxy model trained through ``state.fit_proxy`` (each paper's method needs one).
PROXY_SELECTORS = {"el2n", "grand", "forgetting", "loss_filter", "color_filter", "s2l"}


class Recorder(Callback):
    """Runs after the selector: keeps what it set for each epoch, and the run's FLOPs just before each step's
    forward+backward is metered (after every callback's before_step)."""

    def __init__(self):
        self.indices, self.weights, self.n_train, self.default = [], [], [], []
        self.flops_before_step = []

    def on_epoch_start(self, state):
        self.indices.append(state.epoch_indices.clone())
        self.weights.append(None if state.sample_weights is None else state.sample_weights.clone())
        self.n_train.append(state.task.n_train)

    def before_step(self, state):
        self.flops_before_step.append(state.flops)


class Default(Callback):
    """Runs before the selector: keeps the Trainer's default order, to see whether the selector changed it; spies
    on ``state.fit_proxy`` (the FLOPs of every proxy run the selector trains); and records the run's FLOPs right
    after each step's own FLOPs were added (before any other callback's after_step)."""

    def __init__(self):
        self.orders, self.proxy_flops, self.flops_after_step = [], [], []

    def on_fit_start(self, state):
        real = state.fit_proxy

        def spy(*args, **kwargs):
            proxy_state = real(*args, **kwargs)
            self.proxy_flops.append(proxy_state.flops)
            return proxy_state

        state.fit_proxy = spy

    def on_epoch_start(self, state):
        self.orders.append(state.epoch_indices.clone())

    def after_step(self, state):
        self.flops_after_step.append(state.flops)


@pytest.fixture(scope="module")
def task():
    return build_task("digits-mlp", n_train=300)


def fit(task, name, params=None, seed=0, epochs=2):
    sel = registry.get("data", name).build(params or {})
    model = task.build_model(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rec, default = Recorder(), Default()
    s = Trainer(task, model, opt, Schedule(epochs=epochs, batch_size=32), [default, sel, rec], seed).fit()
    return s, rec, default


def params_for(name):
    return {"fraction": 0.3} if registry.get("data", name).capabilities.fraction else {}


@pytest.mark.parametrize("name", METHODS)
def test_indices_valid_and_unique(task, name):
    s, rec, _ = fit(task, name, params_for(name))
    unique = registry.get("data", name).capabilities.unique_rows
    for idx, n in zip(rec.indices, rec.n_train):
        assert idx.dtype == torch.long and idx.dim() == 1 and len(idx) > 0
        assert int(idx.min()) >= 0 and int(idx.max()) < n
        if unique:
            assert len(idx.unique()) == len(idx)
    assert task.n_train == 300  # selectors that grow the data (SMOTE) restore the shared task
    assert s.step == sum(math.ceil(len(i) / 32) for i in rec.indices)
    assert s.planned_steps == s.step  # the LR schedule was re-planned to the rows actually visited


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_for_a_seed(task, name):
    a, ra, _ = fit(task, name, params_for(name), seed=3)
    b, rb, _ = fit(task, name, params_for(name), seed=3)
    assert len(ra.indices) == len(rb.indices) == 2 and len(ra.weights) == len(rb.weights) == 2
    for x, y in zip(ra.indices, rb.indices):
        assert torch.equal(x, y)
    for x, y in zip(ra.weights, rb.weights):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a.metrics == b.metrics


@pytest.mark.parametrize("name", [n for n in METHODS if registry.get("data", n).capabilities.fraction])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_fraction_honoured(task, name, fraction):
    _, rec, _ = fit(task, name, {"fraction": fraction}, epochs=2)
    for idx in rec.indices:
        assert len(idx) == round(fraction * task.n_train)


@pytest.mark.parametrize("name", [n for n in METHODS if registry.get("data", n).capabilities.fraction])
@pytest.mark.parametrize("bad", [0, 1.5, -0.1, "half"])
def test_bad_fraction_is_a_clear_error(name, bad):
    with pytest.raises(ConfigError, match=r"fraction must be a number in \(0, 1\].*but got"):
        registry.get("data", name).build({"fraction": bad})


@pytest.mark.parametrize("name", METHODS)
def test_changes_something_and_counts_scoring(task, name):
    s, rec, default = fit(task, name, params_for(name))
    changed = any(w is not None for w in rec.weights) or any(
        len(i) != len(d) or not torch.equal(i, d) for i, d in zip(rec.indices, default.orders))
    assert changed, f"{name} left the Trainer's data order and weights untouched"
    for w in rec.weights:
        if w is not None:
            assert len(w) == task.n_train and torch.isfinite(w).all() and (w > 0).all()
    # FLOPs the run's own steps added (measured between the callbacks around each step) vs everything else
    assert len(rec.flops_before_step) == len(default.flops_after_step) == s.step
    own = sum(a - b for a, b in zip(default.flops_after_step, rec.flops_before_step))
    extra = s.flops - own
    scored = bool(default.proxy_flops)  # the selector trained a proxy through the run's Trainer
    assert scored == (name in PROXY_SELECTORS), f"{name}: fit_proxy called={scored}"
    if scored:
        assert "scoring" in s.data_report, f"{name} trained a proxy but reported no scoring cost"
        sc = s.data_report["scoring"]
        assert sc["method"] == name and sc["wall_time_s"] > 0
        # every proxy FLOP is charged (plus its scoring passes), and exactly what is reported was added to the run
        assert sc["flops"] >= sum(default.proxy_flops) > 0
        assert extra == pytest.approx(sc["flops"], rel=1e-9)
    else:  # no scoring: nothing beyond the steps is charged, and nothing is reported
        assert "scoring" not in s.data_report and extra == pytest.approx(0.0, abs=1e-6 * s.flops)


@pytest.mark.parametrize("name", METHODS)
def test_summary_and_paper(name):
    e = registry.get("data", name)
    assert e.summary and e.paper

