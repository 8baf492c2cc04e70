"""Memory levers a fine-tuner expects, measured by the meters: gradient accumulation, activation checkpointing,
bf16 autocast."""
from __future__ import annotations

import pytest
import torch

from leanfit.engine.errors import ConfigError
from leanfit.engine.recipe import Schedule
from leanfit.engine.task import build_task
from leanfit.engine.trainer import Trainer

from .test_padding import short_text_task


def _fit(task, sched, seed=0):
    model = task.build_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: one step of a mean loss is one gradient step
    tr = Trainer(task, model, opt, Schedule(**sched), seed=seed, evaluate=False)
    return tr, tr.fit(), model


def test_grad_accumulation_equals_one_big_batch():
    t = build_task("digits-mlp", n_train=256)
    _, big, m1 = _fit(t, {"epochs": 1, "batch_size": 64})
    _, acc, m2 = _fit(t, {"epochs": 1, "batch_size": 16, "grad_accum": 4})
    assert big.step == acc.step == 4 and big.samples_seen == acc.samples_seen == 256
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert acc.flops == pytest.approx(big.flops, rel=1e-9)  # the same arithmetic, in 4 pieces


def test_grad_accumulation_needs_a_gradient_optimizer():
    t = build_task("digits-mlp", n_train=64)
    model = t.build_model(0)
    from leanfit.engine import registry

    opt = registry.get("optim", "mezo").build({}).build(list(model.named_parameters()))
    with pytest.raises(ConfigError, match="grad_accum must be 1"):
        Trainer(t, model, opt, Schedule(grad_accum=2))


def test_checkpointing_trades_saved_activations_for_recomputation():
    t = short_text_task(dynamic=False)
    plain, s1, m1 = _fit(t, {"epochs": 1, "batch_size": 16})
    ckpt, s2, m2 = _fit(t, {"epochs": 1, "batch_size": 16, "gradient_checkpointing": True})
    assert ckpt.activation_bytes < plain.activation_bytes / 1.5  # blocks keep only their inputs
    assert s2.flops > s1.flops  # ... and recompute their forward in backward (counted)
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(a, b, atol=1e-5)  # same training, no dropout in this model
    with pytest.raises(ConfigError, match="gradient_checkpointing needs a Hugging Face model"):
        _fit(build_task("digits-mlp", n_train=64), {"epochs": 1, "gradient_checkpointing": True})


def test_bf16_autocast_trains_and_saves_smaller_activations():
    t = short_text_task(dynamic=False)
    fp32, s1, _ = _fit(t, {"epochs": 1, "batch_size": 16})
    bf16, s2, _ = _fit(t, {"epochs": 1, "batch_size": 16, "precision": "bf16"})
    assert bf16.activation_bytes < 0.8 * fp32.activation_bytes
    assert torch.isfinite(s2.loss) and s2.flops == s1.flops  # the same ops, in lower precision
