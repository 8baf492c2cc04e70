"""Dynamic padding and length-grouped batches (issue 17): the same predictions as fixed padding for a fixed model,
exact FLOPs for every batch shape, token costs, and a seeded length-grouped order."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from leanfit.engine.metering import StepMeter
from leanfit.engine.recipe import Schedule
from leanfit.engine.task import Task, trim_padding
from leanfit.engine.trainer import Trainer

WIDTH = 24


def short_text_task(dynamic: bool = True, n: int = 48) -> Task:
    """A tiny random BERT classifier on rows of 2–20 real tokens, stored right-padded to WIDTH."""
    from transformers import BertConfig, BertModel

    from leanfit.tasks.text import PooledClassifier

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=WIDTH, attn_implementation="eager",
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        return PooledClassifier(BertModel(cfg, add_pooling_layer=False), 32, 3)

    g = torch.Generator().manual_seed(0)

    def split():
        lengths = torch.randint(2, 21, (n,), generator=g)
        mask = (torch.arange(WIDTH)[None] < lengths[:, None]).long()
        ids = torch.randint(1, 60, (n, WIDTH), generator=g) * mask
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 3, (n,), generator=g)}

    return Task("short-text", build, split(), split(), split(), 3, head=("classifier",),
                collate=trim_padding(2) if dynamic else None)


def test_trim_padding_cuts_to_the_longest_row_rounded_up():
    t = short_text_task()
    b = t.batch("train", torch.arange(6))
    longest = int(t.train["attention_mask"][:6].sum(1).max())
    assert b["input_ids"].shape[1] == min(WIDTH, -(-longest // 2) * 2) and b["labels"].shape == (6,)
    assert int(b["attention_mask"].sum()) == int(t.train["attention_mask"][:6].sum())  # no real token cut


def test_dynamic_padding_changes_no_prediction_for_a_fixed_model():
    fixed, dynamic = short_text_task(False), short_text_task(True)
    model = fixed.build_model(0).eval()
    with torch.no_grad():
        for idx in torch.arange(48).split(8):
            a = fixed.forward(model, fixed.batch("test", idx))
            b = dynamic.forward(model, dynamic.batch("test", idx))
            assert torch.allclose(a, b, atol=1e-5) and torch.equal(a.argmax(-1), b.argmax(-1))


def fit(task, **sched):
    model = task.build_model(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return Trainer(task, model, opt, Schedule(epochs=2, batch_size=8, **sched), seed=0, evaluate=False)


def test_flops_of_every_dynamic_shape_are_exact_and_tokens_are_counted(monkeypatch):
    t = short_text_task()
    scaled = fit(t)
    s1 = scaled.fit()
    assert scaled.meter.batch_linear is True and len(scaled.meter.per_shape) > 3  # many shapes, mostly per row
    whole = fit(t)
    monkeypatch.setattr(StepMeter, "row", staticmethod(lambda batch: batch))  # meter every shape as a whole batch
    whole.meter.batch_linear = False
    s2 = whole.fit()
    assert s1.flops == s2.flops and whole.meter.per_shape == scaled.meter.per_shape
    real = int(t.train["attention_mask"].sum()) * 2
    assert s1.tokens_seen == real and real < s1.padded_tokens_seen < 2 * 48 * WIDTH


def test_length_grouping_is_seeded_and_cuts_padding():
    t = short_text_task()
    plain, grouped = fit(t).fit(), fit(t, group_by_length=True).fit()
    again = fit(t, group_by_length=True).fit()
    assert grouped.padded_tokens_seen < plain.padded_tokens_seen and grouped.tokens_seen == plain.tokens_seen
    assert grouped.flops < plain.flops and grouped.flops == again.flops


def test_fixed_padding_is_still_available():
    with pytest.raises(Exception, match="padding must be one of"):
        from leanfit.tasks.text import build_text_task

        build_text_task("x", {}, 2, padding="dynamic")


def test_length_grouped_batches_are_shuffled_not_sorted_longest_to_shortest():
    """A data set of ≤ 50 batches is one mega-batch: without shuffling the batches, every epoch would run from the
    longest rows to the shortest (it cost 2–5 accuracy points on TREC in benchmarks/speed.py)."""
    from leanfit.engine.schedules import length_grouped

    lengths = torch.randint(1, 64, (100,), generator=torch.Generator().manual_seed(0))
    order = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    a = length_grouped(order, lengths, 8, torch.Generator().manual_seed(2))
    b = length_grouped(order, lengths, 8, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(100))  # seeded, a permutation
    batches = list(a.split(8))
    longest = [int(lengths[x].max()) for x in batches[:-1]]
    assert longest != sorted(longest, reverse=True)  # not a longest-to-shortest sweep
    ranked = length_grouped(order, lengths, 8)  # the grouping itself: each batch holds neighbours in length
    for x in batches[:-1]:
        pos = sorted(int((ranked == i).nonzero()) for i in x)
        assert pos[-1] - pos[0] == 7 and pos[0] % 8 == 0
    assert torch.equal(batches[-1], ranked[96:])  # the partial batch (the shortest rows) stays last
