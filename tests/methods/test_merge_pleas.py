"""PLeaS (2407.02447) checked against its definition: self-merge and a permuted copy return the model's function,
the least-squares step equals the normal equations written out here, and with ratio 1 (nothing merged) the merged
model computes both models' features side by side and the average of their logits (the ensemble)."""
from __future__ import annotations

import pytest
import torch

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.methods.merge import pleas as P
from leanfit.methods.merge import rebasin as R
from leanfit.tasks.tabular import CNN1D, MLP


def mlp(seed, hidden=32, depth=3):
    torch.manual_seed(seed)
    return MLP(64, hidden, 10, depth=depth).eval()


def data(seed=0, n=512):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 64, generator=g)


def run(sd, width, x, depth=3):
    m = MLP(64, width, 10, depth=depth).eval()
    m.load_state_dict(sd)
    with torch.no_grad():
        return m(x)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_merging_a_model_with_itself_returns_its_function(ratio):
    a = mlp(0)
    sa = a.state_dict()
    merged, info = P.pleas_merge(sa, sa, data(), ratio, return_info=True)
    assert info["widths"] == [32 + round(ratio * 32)] * 3
    xt = data(1, 200)  # held-out rows, not used by the merge
    with torch.no_grad():
        assert torch.allclose(run(merged, info["widths"][0], xt), a(xt), atol=1e-5)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 1.0])
def test_permuted_copy_is_recovered_exactly(ratio):
    a = mlp(0)
    sa = a.state_dict()
    groups = R.infer_groups(sa)
    g = torch.Generator().manual_seed(3)
    perms = {gr.name: torch.randperm(gr.size, generator=g) for gr in groups}
    sb = R.permute(sa, groups, perms)  # B's unit i is A's unit perms[i]
    merged, info = P.pleas_merge(sa, sb, data(), ratio, return_info=True)
    for gr, blk in zip(groups, info["blocks"]):  # matching undoes the permutation: A unit j <-> B unit π(j)
        assert torch.equal(blk["perm"], torch.argsort(perms[gr.name])), gr.name
    xt = data(1, 200)
    with torch.no_grad():
        assert torch.allclose(run(merged, info["widths"][0], xt), a(xt), atol=1e-5)
    if ratio == 0.0:  # same width: the weights themselves are A's (units alive on the data; see dead-unit note)
        f = P.mlp_features(sa, data())
        for gr, (_, z) in zip(groups, f):
            alive = (z > 0).any(0)
            assert torch.allclose(merged[f"{gr.name}.weight"][alive], sa[f"{gr.name}.weight"][alive], atol=1e-5)


def test_least_squares_equals_normal_equations():
    g = torch.Generator().manual_seed(0)
    n, (mi, ai, bi), (mo, ao, bo) = 20, (2, 1, 2), (1, 2, 1)
    x = torch.randn(n, mi + ai + bi, generator=g, dtype=torch.float64)
    y = torch.randn(n, mo + ao + bo, generator=g, dtype=torch.float64)
    w, b = P.least_squares_layer(x, y, (mi, ai, bi), (mo, ao, bo))

    def normal_eq(cols, rows):  # [W b] = (XᵀX)⁻¹ Xᵀ Y with X = [x_cols, 1]
        xx = torch.cat([x[:, cols], torch.ones(n, 1, dtype=torch.float64)], 1)
        return torch.linalg.inv(xx.T @ xx) @ xx.T @ y[:, rows]

    merged_in, a_in, b_in = list(range(0, 2)), [2], [3, 4]
    for rows, cols in (([0], merged_in + a_in + b_in), ([1, 2], merged_in + a_in), ([3], merged_in + b_in)):
        sol = normal_eq(cols, rows)
        assert torch.allclose(w[rows][:, cols], sol[:-1].T, atol=1e-10)
        assert torch.allclose(b[rows], sol[-1], atol=1e-10)
    assert (w[1:3][:, b_in] == 0).all() and (w[3:4][:, a_in] == 0).all()  # A-only outputs never read B-only inputs
    # without a split: plain least squares over all rows and columns
    w2, b2 = P.least_squares_layer(x, y)
    xx = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.solve(xx.T @ xx, xx.T @ y)
    assert torch.allclose(w2, sol[:-1].T, atol=1e-10) and torch.allclose(b2, sol[-1], atol=1e-10)


def test_ratio_one_reproduces_both_models_features_and_the_ensemble():
    a, b = mlp(0), mlp(1)
    sa, sb = a.state_dict(), b.state_dict()
    merged, info = P.pleas_merge(sa, sb, data(), 1.0, return_info=True)
    assert info["widths"] == [64, 64, 64]
    xt = data(1, 200)
    fm = P.mlp_features(merged, xt)
    fa, fb = P.mlp_features(sa, xt), P.mlp_features(sb, xt)
    for blk, (_, zm), (_, za), (_, zb) in zip(info["blocks"], fm, fa, fb):
        assert len(blk["a_merged"]) == 0 and torch.equal(blk["a_sep"], torch.arange(32))
        assert torch.allclose(zm, torch.cat([za, zb[:, blk["b_sep"]]], 1), atol=1e-5)  # [Z_A | Z_B π]
    assert torch.allclose(fm[-1][0], (fa[-1][0] + fb[-1][0]) / 2, atol=1e-5)  # logits: the ensemble average


def test_partial_split_keeps_the_least_correlated_pairs_apart():
    corr = torch.eye(4) * torch.tensor([0.9, 0.1, 0.5, 0.3])
    blk = P.partial_match(corr, 0.5)
    assert blk["a_sep"].tolist() == [1, 3] and blk["a_merged"].tolist() == [0, 2]
    assert torch.equal(blk["perm"], torch.arange(4))
    a, b = mlp(0), mlp(1)
    merged, info = P.pleas_merge(a.state_dict(), b.state_dict(), data(), 0.25, return_info=True)
    assert info["widths"] == [40, 40, 40] and merged["fc2.weight"].shape == (40, 40)
    assert merged["head.weight"].shape == (10, 40) and merged["fc1.weight"].shape == (40, 64)
    assert torch.isfinite(run(merged, 40, data(1, 8))).all()


def test_registered_merger_uses_inputs_and_folds_more_models():
    a, b = mlp(0, depth=2), mlp(1, depth=2)
    sa, sb = a.state_dict(), b.state_dict()
    entry = registry.get("merge", "pleas")
    assert "2407.02447" in entry.paper
    x = data()
    m = entry.build({"ratio": 0.5, "n_samples": 300, "seed": 2}).merge(None, [sa, sb], inputs=x)
    rows = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(2))[:300]]
    ref = P.pleas_merge(sa, sb, rows, 0.5)
    assert all(torch.equal(m[k], ref[k]) for k in ref)
    three = entry.build({}).merge(None, [sa, sa, sa], inputs=x)
    assert torch.allclose(run(three, 32, x[:50], 2), a(x[:50]), atol=1e-5)
    with pytest.warns(UserWarning, match="standard-normal"):
        entry.build({}).merge(None, [sa, sb])


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ConfigError, match="ratio must be a fraction in"):
        P.PleasConfig(ratio=1.5)
    with pytest.raises(ConfigError, match="n_samples must be an integer"):
        P.PleasConfig(n_samples=1)
    sa = mlp(0).state_dict()
    with pytest.raises(ConfigError, match="ratio must be 0 when merging more than two"):
        registry.get("merge", "pleas").build({"ratio": 0.5}).merge(None, [sa, sa, sa], inputs=data())
    with pytest.raises(ConfigError, match="built-in MLP"):
        P.pleas_merge(CNN1D(40, 8, 16, 10).state_dict(), CNN1D(40, 8, 16, 10).state_dict(), torch.randn(8, 40))
    with pytest.raises(ConfigError, match="same depth and widths"):
        P.pleas_merge(sa, mlp(1, hidden=16).state_dict(), data())
    with pytest.raises(ConfigError, match="inputs must be"):
        P.pleas_merge(sa, sa, torch.randn(8, 40))


def test_run_merge_feeds_task_rows_and_rejects_wider_models(tmp_path):
    from safetensors.torch import save_file

    from leanfit.workflows.merge import run_merge
    from leanfit.engine.task import build_task

    tp = {"hidden": 16, "n_train": 200}
    task = build_task("digits-mlp", **tp)
    paths = []
    for s in (0, 1):
        p = tmp_path / f"m{s}.safetensors"
        save_file(task.build_model(s).state_dict(), str(p))
        paths.append(str(p))
    spec = {"method": "pleas", "params": {"n_samples": 200}, "task": "digits-mlp", "task_params": tp, "models": paths}
    res = run_merge(spec)  # no "no inputs" warning: the task's train rows are used
    assert res["method"] == "pleas" and all(0 <= r["merged_accuracy"] <= 1 for r in res["models"])
    with pytest.raises(ConfigError, match="params.ratio must be 0"):
        run_merge({**spec, "params": {"ratio": 0.5}})
