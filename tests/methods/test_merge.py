"""Numerical tests of the merging functions against the papers' equations written out independently here, and of
weight matching (exact recovery of a synthetic permutation; function unchanged by permutation).

The reference formulas below follow the papers; parity with mergekit's implementation (optional dependency) is
checked separately in test_merge_mergekit.py, which also lists where the two definitions differ."""
from __future__ import annotations

import math

import pytest
import torch

from leanfit.engine.errors import ConfigError
from leanfit.methods.merge import arithmetic as A
from leanfit.methods.merge import rebasin as R
from leanfit.tasks.tabular import CNN1D, MLP


def rand_sds(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(6, 5, generator=g), "b": torch.randn(6, generator=g), "step": torch.tensor(3)}
    fts = [{"w": base["w"] + torch.randn(6, 5, generator=g), "b": base["b"] + torch.randn(6, generator=g),
            "step": torch.tensor(3)} for _ in range(n)]
    return base, fts


def test_linear_and_task_arithmetic_equations():
    base, fts = rand_sds()
    w = [0.5, 1.0, 2.0]
    m = A.linear_merge(fts, w)
    ref = (0.5 * fts[0]["w"] + fts[1]["w"] + 2 * fts[2]["w"]) / 3.5
    assert torch.allclose(m["w"], ref, atol=1e-6) and m["step"].item() == 3 and m["step"].dtype == torch.int64
    ta = A.task_arithmetic(base, fts, w, lam=0.3)
    ref = base["b"] + 0.3 * sum(wi * (f["b"] - base["b"]) for wi, f in zip(w, fts))
    assert torch.allclose(ta["b"], ref, atol=1e-6)


def ties_reference(base, fts, density, lam):
    """TIES Alg. 1 written loop-by-loop over entries."""
    out = base.clone()
    taus = []
    for f in fts:
        t = (f - base).flatten()
        k = math.ceil(density * t.numel())
        keep = sorted(range(t.numel()), key=lambda i: -abs(t[i].item()))[:k]
        tt = torch.zeros_like(t)
        tt[keep] = t[keep]
        taus.append(tt)
    flat = out.flatten()
    for i in range(flat.numel()):
        s = sum(t[i].item() for t in taus)
        sign = (s > 0) - (s < 0)
        vals = [t[i].item() for t in taus if t[i].item() != 0 and ((t[i].item() > 0) - (t[i].item() < 0)) == sign]
        flat[i] += lam * (sum(vals) / len(vals) if vals else 0.0)
    return flat.view_as(base)


@pytest.mark.parametrize("density", [0.2, 0.5, 1.0])
def test_ties_matches_algorithm_1(density):
    base, fts = rand_sds()
    m = A.ties_merge(base, fts, density=density, lam=0.7)
    assert torch.allclose(m["w"], ties_reference(base["w"], [f["w"] for f in fts], density, 0.7), atol=1e-6)


def test_trim_keeps_exact_fraction():
    t = torch.randn(100)
    assert (A.magnitude_trim(t, 0.2) != 0).sum().item() == 20
    assert (A.magnitude_trim(t, 0.07) != 0).sum().item() == 7  # 0.07·100 = 7.000000000000001 in floating point
    assert (A.magnitude_trim(t, 0.075) != 0).sum().item() == 8  # ⌈7.5⌉


def test_dare_drop_rescale_and_seed():
    base, fts = rand_sds(n=2)
    m1 = A.dare_merge(base, fts, density=0.3, seed=5)
    m2 = A.dare_merge(base, fts, density=0.3, seed=5)
    assert torch.equal(m1["w"], m2["w"])
    # same mask drawn independently: Eq. 2, tau * m / (1 - p) with keep iff U < density, keys in state-dict order
    g = torch.Generator().manual_seed(5)
    ref = {}
    for k in ("w", "b"):
        ref[k] = base[k].clone()
        for f in fts:
            keep = (torch.rand(base[k].shape, generator=g) < 0.3).float()
            ref[k] += (f[k] - base[k]) * keep / 0.3
    assert torch.allclose(m1["w"], ref["w"], atol=1e-6) and torch.allclose(m1["b"], ref["b"], atol=1e-6)
    # rescaling keeps the expected task vector: mean over many seeds approaches tau
    t = torch.ones(20000)
    assert abs(A.dare_drop(t, 0.1, torch.Generator().manual_seed(0)).mean().item() - 1.0) < 0.05
    # density 1 = task arithmetic
    assert torch.allclose(A.dare_merge(base, fts, density=1.0)["w"], A.task_arithmetic(base, fts)["w"], atol=1e-6)


def test_della_magprune_probabilities_and_unbiasedness():
    t = torch.tensor([[0.1, -3.0, 2.0, 0.5]])
    q = A.magprune_probs(t, density=0.5, epsilon=0.4)
    # ranks by |t|: 0.1->0, 0.5->1, 2.0->2, 3.0->3; drop p_i = (0.5+0.2) - 0.4*(r+0.5)/4
    ref = 1 - torch.tensor([[0.7 - 0.4 * 0.5 / 4, 0.7 - 0.4 * 3.5 / 4, 0.7 - 0.4 * 2.5 / 4, 0.7 - 0.4 * 1.5 / 4]])
    assert torch.allclose(q, ref, atol=1e-6)
    assert abs(q.mean().item() - 0.5) < 1e-6  # mean keep rate = density
    # epsilon=0 reduces MAGPRUNE to DARE's uniform keep probability
    assert torch.allclose(A.magprune_probs(torch.randn(3, 7), 0.3, 0.0), torch.full((3, 7), 0.3))
    base, fts = rand_sds(n=2)
    # density 1 (no drop) = TIES without trimming
    assert torch.allclose(A.della_merge(base, fts, density=1.0, epsilon=0.0)["w"],
                          A.ties_merge(base, fts, density=1.0)["w"], atol=1e-6)


def test_fisher_merge_equation_and_limits():
    base, fts = rand_sds(n=2)
    f = [{"w": torch.rand(6, 5), "b": torch.rand(6)} for _ in fts]
    m = A.fisher_merge(fts, f, eps=1e-12)
    ref = (f[0]["w"] * fts[0]["w"] + f[1]["w"] * fts[1]["w"]) / (f[0]["w"] + f[1]["w"])
    assert torch.allclose(m["w"], ref, atol=1e-5)
    ones = [{k: torch.ones_like(v) for k, v in fi.items()} for fi in f]
    assert torch.allclose(A.fisher_merge(fts, ones)["w"], A.linear_merge(fts)["w"], atol=1e-6)


def test_diagonal_fisher_matches_per_example_gradients():
    from leanfit.engine.task import build_task

    task = build_task("digits-mlp", hidden=16, n_train=40)
    model = task.build_model(0)
    fi = A.diagonal_fisher(model, task, n_samples=8, empirical=True)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(task.n_train, generator=g)[:8]
    acc = torch.zeros_like(model.fc1.weight)
    for i in idx:
        model.zero_grad()
        x, y = task.train["x"][i:i + 1], task.train["labels"][i]
        torch.log_softmax(model(x), -1)[0, y].backward()
        acc += model.fc1.weight.grad ** 2
    assert torch.allclose(fi["fc1.weight"], acc / 8, atol=1e-6)


def test_bad_inputs_have_clear_errors():
    base, fts = rand_sds(n=2)
    with pytest.raises(ConfigError, match="density must be a fraction in"):
        A.TiesConfig(density=1.5)
    with pytest.raises(ConfigError, match="epsilon must be in"):
        A.DellaConfig(density=0.9, epsilon=0.5)
    bad = dict(fts[1])
    bad["w"] = torch.zeros(3, 5)
    with pytest.raises(ConfigError, match="must have shape"):
        A.task_arithmetic(base, [fts[0], bad])
    with pytest.raises(ConfigError, match="base must be a state dict"):
        A.ties_merge(None, fts)


# ------------------------------------------------------------------------------------------------- weight matching
def random_perms(groups, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {gr.name: torch.randperm(gr.size, generator=g) for gr in groups}


@pytest.mark.parametrize("make,x", [
    (lambda: MLP(64, 32, 10, depth=3), torch.randn(8, 64)),
    (lambda: CNN1D(40, 8, 16, 10), torch.randn(8, 40)),
])
def test_permutation_preserves_function_and_is_recovered(make, x):
    torch.manual_seed(0)
    model = make()
    sd = model.state_dict()
    groups = R.infer_groups(sd)
    perms = random_perms(groups)
    psd = R.permute(sd, groups, perms)
    assert any(not torch.equal(psd[k], sd[k]) for k in sd)
    ref = model(x)
    model.load_state_dict(psd)
    assert torch.allclose(model(x), ref, atol=1e-5)
    found = R.weight_matching(sd, psd, groups)
    back = R.permute(psd, groups, found)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k


def test_transformer_ffn_and_heads_permutation():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=24,
                     max_position_embeddings=12, attn_implementation="eager")
    torch.manual_seed(0)
    m = BertModel(cfg).eval()
    R.set_num_heads(16, 4)
    sd = m.state_dict()
    groups = R.infer_groups(sd)
    assert {g.name.split(".")[-1] for g in groups} == {"ffn", "heads"} and len(groups) == 4
    psd = R.permute(sd, groups, random_perms(groups, 3))
    ids = torch.randint(0, 50, (2, 7))
    ref = m(input_ids=ids).last_hidden_state
    m.load_state_dict(psd)
    assert torch.allclose(m(input_ids=ids).last_hidden_state, ref, atol=1e-5)
    back = R.permute(psd, groups, R.weight_matching(sd, psd, groups))
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_barrier_definition():
    curve = {"alpha": [0, 0.5, 1], "loss": [1.0, 3.0, 2.0], "accuracy": [0.9, 0.5, 0.7]}
    b = R.barrier(curve)
    assert b["loss_barrier"] == pytest.approx(1.5) and b["accuracy_barrier"] == pytest.approx(0.3)
    assert b["midpoint_loss_barrier"] == pytest.approx(1.5)


def test_unknown_architecture_error():
    with pytest.raises(ConfigError, match="permutation symmetries"):
        R.infer_groups({"foo.weight": torch.zeros(2, 2)})
