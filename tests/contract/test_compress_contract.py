"""Contract tests for every registered compressor (generated from the registry): the reported numbers
(sparsity / rank / bits / layers / shapes) equal what the tensors show, the model still runs, bad configs fail
with errors naming the field, the method works through a recipe's ``compress:`` step, and it changes something."""
from __future__ import annotations

import copy
import dataclasses
import math

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


# the report key each method declares in the registry (Capabilities.reports) → the key it must fill
REPORT_KEY = {"sparsity": "sparsity", "rank": "ranks", "bits": "bits", "layers": "layers", "shapes": "shapes"}


def check_report(name: str, rep: dict, model, before) -> None:
    """The declared report is present (unconditionally) and equals what the tensors show."""
    declared = registry.get("compress", name).capabilities.reports
    assert REPORT_KEY[declared] in rep, f"{name} declares reports={declared!r} but reported {sorted(rep)}"
    assert rep["method"] == name
    if "sparsity" in rep:
        per = {n: float((model.get_submodule(n).weight == 0).float().mean()) for n in rep["layer_sparsity"]}
        assert per == pytest.approx(rep["layer_sparsity"]) and per
        weights = sum(model.get_submodule(n).weight.numel() for n in per)
        assert rep["zeros"] == sum(int((model.get_submodule(n).weight == 0).sum()) for n in per)
        assert rep["weights"] == weights and rep["sparsity"] == pytest.approx(rep["zeros"] / weights)
        # global magnitude pruning hits its target to within one weight
        assert abs(rep["sparsity"] - rep["target_sparsity"]) <= 1 / weights
    if "ranks" in rep:
        real = {n: m.down.weight.shape[0] for n, m in model.named_modules() if isinstance(m, lowrank.LowRankLinear)}
        assert rep["ranks"] == real and real
        for n, m in model.named_modules():
            if isinstance(m, lowrank.LowRankLinear):
                assert torch.linalg.matrix_rank(m.up.weight @ m.down.weight) <= m.rank == real[n]
                assert m.rank < min(m.up.weight.shape[0], m.down.weight.shape[1])  # really low rank
    if "bits" in rep:
        from torch.ao.nn.quantized.dynamic import Linear as QLinear

        real = {n: torch.iinfo(m.weight().int_repr().dtype).bits for n, m in model.named_modules() if isinstance(m, QLinear)}
        real.update(quant.bits_of(model))
        assert rep["bits"] == real and real
        target = rep.get("target_bits", 8)
        assert all(b <= target for b in real.values())
        for n, m in model.named_modules():  # at most 2^bits integer levels per quantized layer
            if hasattr(m, "quant_scale"):
                assert len(torch.unique(torch.round(m.weight.detach() / m.quant_scale))) <= 2 ** real[n]
    if "layers" in rep:
        from leanfit.methods.compress.block_influence import find_block_stack

        assert rep["layers"] == len(find_block_stack(model)[1]) == len(rep["kept"])
        bi = rep["block_influence"]
        assert sorted(rep["removed"] + rep["kept"]) == list(range(len(bi)))
        assert sorted(rep["removed"]) == sorted(sorted(range(len(bi)), key=bi.__getitem__)[:len(rep["removed"])])
    if "shapes" in rep:
        after = dict(model.named_parameters())
        assert rep["shapes"], f"{name} reported no shape change"
        for n, (old, new) in rep["shapes"].items():
            assert list(after[n].shape) == new and list(before[n]) == old and new != old
        assert {n for n in after if tuple(after[n].shape) != before[n]} == set(rep["shapes"])
        assert rep["params_before"] == sum(math.prod(s) for s in before.values())
        assert rep["params_after"] == sum(p.numel() for p in model.parameters())
        assert rep["removed_fraction"] == pytest.approx(1 - rep["params_after"] / rep["params_before"])


@pytest.mark.parametrize("name", METHODS)
def test_report_equals_tensors_and_model_runs(name, cnn):
    t = task_for(name, cnn)
    base = t.build_model(0)
    model = copy.deepcopy(base)
    before = {n: tuple(p.shape) for n, p in model.named_parameters()}
    rep = registry.get("compress", name).build(SMALL.get(name, {})).compress(model, t)
    check_report(name, dict(rep), model, before)
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
    """Through a recipe: the stored report equals the compressed model's tensors, and the run's validation and
    test metrics are those of the compressed model (evaluated here again), not of the model before compression."""
    from leanfit.engine.callbacks import Callback

    class Keep(Callback):  # runs after the recipe's compressors
        def on_fit_start(self, state):
            self.model, self.before = state.model, {n: tuple(p.shape) for n, p in state.model.named_parameters()}

    keep = Keep()
    r = Recipe.from_dict({"task": {"name": "mnist1d-cnn", "num_samples": 400}, "adapter": "full", "optimizer": {"name": "adamw", "lr": 3e-3},
                          "compress": [{"name": name, **SMALL.get(name, {})}], "schedule": {"epochs": 1, "batch_size": 64}})
    res = run_recipe(r, task=cnn, callbacks=[keep])
    assert res.status == "complete" and res.extra["compress"][0]["method"] == name
    check_report(name, dict(res.extra["compress"][0]), keep.model, keep.before)
    for split, got in (("validation", res.metrics), ("test", res.test_metrics)):
        ev = cnn.evaluate(keep.model, split).metrics
        assert got["accuracy"] == ev["accuracy"] and got["eval_loss"] == pytest.approx(ev["eval_loss"], rel=1e-6)
