"""Contract tests for every registered merge method (generated from the registry): merging N identical models
returns that model; results do not depend on dict order; bad params fail naming the field; alignment-based methods
leave each model's function unchanged; and every method changes something when models differ."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.tasks.tabular import MLP

METHODS = [e.name for e in registry.list_methods("merge")]


def sd_of(seed, base=None, scale=0.1):
    torch.manual_seed(seed)
    m = MLP(64, 16, 10)
    if base is not None:
        m.load_state_dict({k: v + scale * torch.randn_like(v) for k, v in base.items()})
    return {k: v.clone() for k, v in m.state_dict().items()}


def do_merge(name, base, fts):
    merger = registry.get("merge", name).build({})
    if "fisher" in registry.get("merge", name).capabilities.inputs:
        return merger.merge(base, fts, fisher=[{k: torch.rand_like(v) + 0.1 for k, v in sd.items()} for sd in fts])
    return merger.merge(base, fts)


def test_registry_has_the_issue_methods():
    assert {"linear", "task_arithmetic", "ties", "dare", "della", "fisher", "rebasin"} <= set(METHODS)


# methods that drop / trim task-vector entries return the model exactly only when nothing is dropped
IDENTITY_PARAMS = {"ties": {"density": 1.0}, "dare": {"density": 1.0}, "della": {"density": 1.0, "epsilon": 0.0}}
SUMS_TASK_VECTORS = {"task_arithmetic", "dare"}  # θ0 + λ Σ τ_t: N copies of τ give θ0 + N·τ (λ = 1)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("n", [1, 3])
def test_merging_identical_models_returns_that_model(name, n):
    base = sd_of(0)
    ft = sd_of(1, base)
    entry = registry.get("merge", name)
    params = IDENTITY_PARAMS.get(name, {})
    fts = [dict(ft) for _ in range(n)]
    if "fisher" in entry.capabilities.inputs:
        merged = entry.build(params).merge(base, fts, fisher=[{k: torch.rand_like(v) + 0.1 for k, v in ft.items()}
                                                                for _ in fts])
    else:
        merged = entry.build(params).merge(base, fts)
    assert set(merged) == set(ft)
    for k in ft:
        expect = base[k] + n * (ft[k] - base[k]) if name in SUMS_TASK_VECTORS else ft[k]
        assert torch.allclose(merged[k], expect, atol=1e-5), (name, k)


def test_ties_on_identical_models_returns_base_plus_trimmed_vector():
    from leanfit.methods.merge.arithmetic import magnitude_trim

    base = sd_of(0)
    ft = sd_of(1, base)
    merged = registry.get("merge", "ties").build({"density": 0.3}).merge(base, [ft, dict(ft)])
    for k in ft:
        assert torch.allclose(merged[k], base[k] + magnitude_trim(ft[k] - base[k], 0.3), atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_changes_something_and_keeps_shapes(name):
    """Every merged tensor differs from the same tensor of every input (base and each fine-tune; all differ here),
    so a merger that returns one of its inputs, whole or tensor by tensor, fails."""
    base = sd_of(0)
    fts = [sd_of(1, base), sd_of(2, base)]
    merged = do_merge(name, base, fts)
    assert set(merged) == set(fts[0])
    assert all(merged[k].shape == fts[0][k].shape and merged[k].dtype == fts[0][k].dtype for k in fts[0])
    inputs = {"base": base, "finetuned[0]": fts[0], "finetuned[1]": fts[1]}
    for k in fts[0]:
        assert not any(torch.allclose(x[k], y[k]) for x, y in ((base, fts[0]), (base, fts[1]), (fts[0], fts[1])))
        for label, sd in inputs.items():
            assert not torch.allclose(merged[k], sd[k], atol=1e-6), f"{name}: merged {k} equals {label}'s"
    model = MLP(64, 16, 10)
    model.load_state_dict(merged)
    assert torch.isfinite(model(torch.randn(4, 64))).all()


def test_linear_and_task_arithmetic_formulas_through_the_registry():
    """The registered methods on a two-tensor case, against the equations with the numbers written out."""
    base = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.5, -0.5])}
    a = {"w": torch.tensor([[2.0, 2.0], [1.0, 4.0]]), "b": torch.tensor([1.5, -0.5])}
    b = {"w": torch.tensor([[0.0, 6.0], [3.0, 0.0]]), "b": torch.tensor([0.5, 1.5])}
    lin = registry.get("merge", "linear")
    soup = lin.build({}).merge(base, [a, b])  # uniform soup: (a + b) / 2
    assert torch.equal(soup["w"], torch.tensor([[1.0, 4.0], [2.0, 2.0]])) and torch.equal(soup["b"], torch.tensor([1.0, 0.5]))
    soup = lin.build({"weights": [1.0, 3.0]}).merge(base, [a, b])  # (1·a + 3·b) / 4
    assert torch.allclose(soup["w"], torch.tensor([[0.5, 5.0], [2.5, 1.0]]))
    assert torch.allclose(soup["b"], torch.tensor([0.75, 1.0]))
    ta = registry.get("merge", "task_arithmetic")
    # τ_a = a − base = [[1, 0], [−2, 0]], [1, 0];  τ_b = [[−1, 4], [0, −4]], [0, 2]
    out = ta.build({}).merge(base, [a, b])  # θ0 + τ_a + τ_b
    assert torch.allclose(out["w"], torch.tensor([[1.0, 6.0], [1.0, 0.0]])) and torch.allclose(out["b"], torch.tensor([1.5, 1.5]))
    out = ta.build({"lam": 0.5, "weights": [2.0, 1.0]}).merge(base, [a, b])  # θ0 + 0.5·(2τ_a + τ_b)
    assert torch.allclose(out["w"], torch.tensor([[1.5, 4.0], [1.0, 2.0]]))
    assert torch.allclose(out["b"], torch.tensor([1.5, 0.5]))


@pytest.mark.parametrize("name", METHODS)
def test_bad_config_names_the_field(name):
    entry = registry.get("merge", name)
    fields = [f.name for f in dataclasses.fields(entry.config_cls)]
    with pytest.raises(ConfigError, match=fields[0]):
        entry.build({fields[0]: "not-a-valid-value"})


@pytest.mark.parametrize("name", [e.name for e in registry.list_methods("merge") if e.capabilities.aligns])
def test_alignment_leaves_function_unchanged(name):
    from leanfit.methods.merge.rebasin import align

    a, b = sd_of(0), sd_of(5)
    x = torch.randn(8, 64)
    m = MLP(64, 16, 10)
    m.load_state_dict(b)
    ref = m(x)
    aligned = align(a, b)
    m.load_state_dict(aligned)
    assert torch.allclose(m(x), ref, atol=1e-5)
    # and it really aligns (a no-op passes the check above): a permutation keeps ‖W_b‖, so maximising Σ⟨W_a, P W_b⟩
    # (weight matching) brings b closer to a (28.8 → 21.5 here)
    dist = lambda u, v: sum(float((u[k] - v[k]).pow(2).sum()) for k in u)  # noqa: E731
    assert dist(a, aligned) < 0.9 * dist(a, b)
