"""Contract tests for every registered compressor (generated from the registry): the reported numbers
(sparsity / rank / bits / layers / shapes) equal what the tensors show, the model still runs, bad configs fail
with errors naming the field, the method works through a recipe's ``compress:`` step, and it changes something."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.methods.compress import lowrank, quant
from leanfit.methods.compress.export import count_weights, file_bytes
from leanfit.engine.recipe import Recipe
from leanfit.engine.task import build_task
from leanfit.engine.task import Task
from leanfit.engine.run import run_recipe

METHODS = [e.name for e in registry.list_methods("compress")]
SMALL = {"laser": {"rhos": [0.1, 0.5], "n_val": 64, "tolerance": 0.5}, "svd": {"energy": 0.5}, "gptq": {"n_calib": 64}, "structured": {"n_calib": 32}}


def tiny_bert_task(n=32) -> Task:
    from transformers import BertConfig, BertModel

    from leanfit.tasks.text import PooledClassifier

    g = torch.Generator().manual_seed(0)
    data = {"input_ids": torch.randint(5, 100, (n, 10), generator=g), "attention_mask": torch.ones(n, 10, dtype=torch.long),
            "labels": torch.randint(0, 3, (n,), generator=g)}
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=16, attn_implementation="eager")

    def build(s):
        torch.manual_seed(s)
        return PooledClassifier(BertModel(cfg), 32, 3)

    return Task(name="tiny-bert", build_model=build, train=data, validation=data, test=data, num_classes=3, head=("classifier",))


@pytest.fixture(scope="module")
def cnn():
    return build_task("mnist1d-cnn", num_samples=400)


def task_for(name, cnn):
    return tiny_bert_task() if registry.get("compress", name).capabilities.needs_blocks else cnn


def check_report(rep: dict, model, before) -> None:
    if "sparsity" in rep:
        per = {n: float((model.get_submodule(n).weight == 0).float().mean()) for n in rep["layer_sparsity"]}
        assert per == pytest.approx(rep["layer_sparsity"])
        assert rep["zeros"] == sum(int((model.get_submodule(n).weight == 0).sum()) for n in per)
    if "ranks" in rep:
        real = {n: m.down.weight.shape[0] for n, m in model.named_modules() if isinstance(m, lowrank.LowRankLinear)}
        assert rep["ranks"] == real
        for n, m in model.named_modules():
            if isinstance(m, lowrank.LowRankLinear):
                assert torch.linalg.matrix_rank(m.up.weight @ m.down.weight) <= m.rank
    if "bits" in rep:
        from torch.ao.nn.quantized.dynamic import Linear as QLinear

        real = {n: torch.iinfo(m.weight().int_repr().dtype).bits for n, m in model.named_modules() if isinstance(m, QLinear)}
        real.update(quant.bits_of(model))
        assert rep["bits"] == real and real
    if "layers" in rep:
        from leanfit.methods.compress.block_influence import find_block_stack

        assert rep["layers"] == len(find_block_stack(model)[1])
    if "shapes" in rep:
        after = dict(model.named_parameters())
        for n, (old, new) in rep["shapes"].items():
            assert list(after[n].shape) == new and list(before[n]) == old
        assert rep["params_after"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_report_equals_tensors_and_model_runs(name, cnn):
    t = task_for(name, cnn)
    base = t.build_model(0)
    model = copy.deepcopy(base)
    before = {n: tuple(p.shape) for n, p in model.named_parameters()}
    rep = registry.get("compress", name).build(SMALL.get(name, {})).compress(model, t)
    check_report(dict(rep), model, before)
    out = t.forward(model, t.batch("validation", torch.arange(4)))
    assert out.shape == (4, t.num_classes) and torch.isfinite(out).all()
    changed = (count_weights(model) != count_weights(base)) or file_bytes(model) != file_bytes(base)
    assert changed, f"{name} changed nothing"


@pytest.mark.parametrize("name", METHODS)
def test_entry_metadata_and_bad_config(name):
    e = registry.get("compress", name)
    assert e.summary and e.paper and "(" in e.paper
    f = dataclasses.fields(e.config_cls)[0]
    bad = "not-a-valid-value" if isinstance(f.default, (bool, str)) else -5
    with pytest.raises(ConfigError, match=f.name):
        e.build({f.name: bad})


@pytest.mark.parametrize("name", [n for n in METHODS if registry.get("compress", n).capabilities.needs_blocks is False])
def test_works_as_recipe_step(name, cnn):
    r = Recipe.from_dict({"task": {"name": "mnist1d-cnn", "num_samples": 400}, "adapter": "full", "optimizer": {"name": "adamw", "lr": 3e-3},
                          "compress": [{"name": name, **SMALL.get(name, {})}], "schedule": {"epochs": 1, "batch_size": 64}})
    res = run_recipe(r, task=cnn)
    assert res.status == "complete" and res.extra["compress"][0]["method"] in (name, "gptq")
    assert 0 <= res.metrics["accuracy"] <= 1
