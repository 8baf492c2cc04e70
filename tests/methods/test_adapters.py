"""Numerical tests of leanfit's own adapters against their papers' equations, written out independently here."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.engine.task import Task


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.head = nn.Linear(12, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.head(self.norm(torch.relu(self.fc2(torch.relu(self.fc1(x))))))


def task() -> Task:
    g = torch.Generator().manual_seed(0)
    d = {"x": torch.randn(16, 12, generator=g), "labels": torch.randint(0, 3, (16,), generator=g)}
    return Task("toy", lambda s: Net(), d, d, d, 3, head=("head",), target_modules=("fc1", "fc2"))


def build(name, **kw):
    t = task()
    m = Net()
    W = {n: (mod.weight.detach().clone(), mod.bias.detach().clone()) for n, mod in m.named_children()
         if isinstance(mod, nn.Linear)}
    a = registry.get("adapters", name).build(kw)
    return a, a.apply(m, t), W


def randomize(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


X = torch.randn(5, 12, generator=torch.Generator().manual_seed(9))


def test_lora_xs_equals_svd_equation():
    a, m, W = build("lora_xs", r=4, scale=0.5)
    randomize(m)
    R = torch.diag(torch.tensor([0.3, -0.2, 0.1, 0.7]))  # diagonal R: invariant to SVD sign flips
    with torch.no_grad():
        m.fc1.R.copy_(R)
    w, b = W["fc1"]
    u, s, vt = np.linalg.svd(w.double().numpy(), full_matrices=False)
    w_new = w.double().numpy() + 0.5 * (u[:, :4] * s[:4]) @ R.double().numpy() @ vt[:4]
    want = X.double().numpy() @ w_new.T + b.double().numpy()
    np.testing.assert_allclose(m.fc1(X).detach().double().numpy(), want, atol=1e-5)
    assert sum(p.numel() for n, p in m.named_parameters() if p.requires_grad and "head" not in n) == 2 * 16


def test_nola_equals_basis_mix_and_stores_seed_only(tmp_path):
    a, m, W = build("nola", r=2, num_basis_a=5, num_basis_b=3, alpha=4.0, seed=7)
    randomize(m)
    L = m.fc2
    A = sum(L.alpha[i] * L.a_basis[i] for i in range(5))
    B = sum(L.beta[j] * L.b_basis[j] for j in range(3))
    w, b = W["fc2"]
    h = torch.randn(4, 8)
    torch.testing.assert_close(L(h), h @ (w + (4.0 / 2) * B @ A).T + b, atol=1e-5, rtol=0)
    # bases come from the seed: the same seed regenerates them, another seed does not
    _, m2, _ = build("nola", r=2, num_basis_a=5, num_basis_b=3, alpha=4.0, seed=7)
    _, m3, _ = build("nola", r=2, num_basis_a=5, num_basis_b=3, alpha=4.0, seed=8)
    assert torch.equal(m2.fc2.a_basis, L.a_basis) and not torch.equal(m3.fc2.a_basis, L.a_basis)
    assert not torch.equal(m.fc1.a_basis[:, :, :8], L.a_basis)  # each layer its own bases
    from safetensors.torch import load_file

    from leanfit.methods.adapters.io import save_adapter

    saved = load_file(str(save_adapter(m, tmp_path / "n.safetensors", "nola", a.config)))
    assert not any("basis" in k for k in saved) and sum(v.numel() for k, v in saved.items() if "head" not in k) == 16


def test_compacter_is_kronecker_sum_with_shared_slow_weights():
    a, m, W = build("compacter", bottleneck=4, n=2)
    randomize(m)
    down = m.fc1.down
    want = sum(torch.kron(down.shared.A[i], torch.outer(down.s[i], down.t[i])) for i in range(2))
    torch.testing.assert_close(down.weight(), want)
    assert m.fc1.down.shared is m.fc2.up.shared  # "slow" A_i shared by every PHM layer
    w, b = W["fc1"]
    y = X @ w.T + b
    up = m.fc1.up
    want_out = y + (torch.nn.functional.gelu(y @ want.T + down.b)) @ up.weight().T + up.b
    torch.testing.assert_close(m.fc1(X), want_out, atol=1e-5, rtol=0)


def test_ssf_scale_shift_and_reparameterisation():
    a, m, W = build("ssf", init_std=0.02)
    randomize(m)
    w, b = W["fc1"]
    g, be = m.fc1.gamma, m.fc1.beta
    torch.testing.assert_close(m.fc1(X), g * (X @ w.T + b) + be, atol=1e-6, rtol=0)
    merged = a.merge(m).fc1
    torch.testing.assert_close(merged.weight, torch.diag(g) @ w)
    torch.testing.assert_close(merged.bias, g * b + be)


def test_bitfit_trains_only_biases():
    a, m, _ = build("bitfit")
    names = sorted(n for n, p in m.named_parameters() if p.requires_grad)
    assert names == ["fc1.bias", "fc2.bias", "head.bias", "head.weight", "norm.bias"]
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    m(X).sum().backward()
    opt.step()
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(names) and "fc1.weight" not in changed
    with pytest.raises(ConfigError, match="bias_patterns"):
        registry.get("adapters", "bitfit").build({"bias_patterns": ["nothing"]}).apply(Net(), task())


def test_houlsby_bottleneck_equation():
    a, m, W = build("houlsby", bottleneck=3)
    torch.testing.assert_close(m.fc1(X), X @ W["fc1"][0].T + W["fc1"][1])  # zero-init up: identity
    randomize(m)
    L = m.fc1
    y = X @ W["fc1"][0].T + W["fc1"][1]
    h = torch.nn.functional.gelu(y @ L.down.weight.T + L.down.bias)
    torch.testing.assert_close(L(X), y + h @ L.up.weight.T + L.up.bias, atol=1e-6, rtol=0)
    assert m.norm.weight.requires_grad  # the paper also trains LayerNorm


def _H(u, plus_v=None):
    """Block-diagonal (I − 2ûûᵀ) or (I − ûûᵀ + v̂v̂ᵀ), built as dense matrices."""
    blocks = []
    for i in range(u.shape[0]):
        uh = u[i] / u[i].norm()
        eye = torch.eye(len(uh))
        if plus_v is None:
            blocks.append(eye - 2 * torch.outer(uh, uh))
        else:
            vh = plus_v[i] / plus_v[i].norm()
            blocks.append(eye - torch.outer(uh, uh) + torch.outer(vh, vh))
    return torch.block_diag(*blocks)


def test_ether_reflection():
    a, m, W = build("ether", n_blocks=2)
    H = _H(m.fc1.u.detach())
    torch.testing.assert_close(H @ H.T, torch.eye(8), atol=1e-6, rtol=0)  # orthogonal
    assert torch.linalg.matrix_norm(H - torch.eye(8), ord=2).item() == pytest.approx(2.0, abs=1e-5)
    torch.testing.assert_close(m.fc1(X), X @ (H @ W["fc1"][0]).T + W["fc1"][1], atol=1e-5, rtol=0)


def test_ether_plus_two_sided():
    a, m, W = build("ether_plus", n_blocks=2)
    torch.testing.assert_close(m.fc1(X), X @ W["fc1"][0].T + W["fc1"][1], atol=1e-5, rtol=0)  # u = v: H⁺ = I
    randomize(m)
    L = m.fc1
    HL, HR = _H(L.u.detach(), L.v.detach()), _H(L.u_r.detach(), L.v_r.detach())
    torch.testing.assert_close(L(X), X @ (HL @ W["fc1"][0] @ HR).T + W["fc1"][1], atol=1e-5, rtol=0)


def test_share_lora_shares_a():
    a, m, W = build("share_lora", r=2, alpha=4.0)
    assert m.fc2.shared_a is not m.fc1.shared_a  # different input widths (12 vs 8)
    randomize(m)
    L = m.fc2
    torch.testing.assert_close(L(X[:, :8]), X[:, :8] @ (W["fc2"][0] + 2.0 * L.B @ L.shared_a.weight).T
                               + W["fc2"][1], atol=1e-6, rtol=0)


def test_share_lora_one_a_for_equal_widths():
    class Net2(Net):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(8, 8)

    t = Task("toy", lambda s: Net2(), task().train, task().validation, task().test, 3, head=("head",), target_modules=("fc1", "fc2"))
    a = registry.get("adapters", "share_lora").build({"r": 2})
    m = a.apply(Net2(), t)
    assert m.fc1.shared_a is m.fc2.shared_a
    assert sum(p.numel() for n, p in m.named_parameters() if p.requires_grad and "head" not in n) == 2 * 8 + 2 * 8 * 2


def test_bad_config_errors_name_the_rule():
    with pytest.raises(ConfigError, match="bottleneck"):
        registry.get("adapters", "compacter").build({"bottleneck": 5, "n": 2})
    with pytest.raises(ConfigError, match="matched no nn.Linear"):
        registry.get("adapters", "lora_xs").build({"target_modules": ["nope"]}).apply(Net(), task())
    with pytest.raises(ConfigError, match="n_blocks"):
        registry.get("adapters", "ether").build({"n_blocks": 3}).apply(Net(), task())


# digits-mlp (fc1 64→128, fc2 128→128, head 128→10 = 1290) at the defaults, from each paper's count:
# LoRA-XS r²=16² per layer; NOLA 64+64 coefficients per layer; Compacter 2(d+m)+m+d per layer (d=128, m=16) + n³=4³
RECIPE_TRAINABLE = {"lora_xs": 2 * 16 ** 2 + 1290, "nola": 2 * 128 + 1290, "compacter": 2 * (2 * 144 + 144) + 64 + 1290}


@pytest.mark.parametrize("name", ["lora_xs", "nola", "compacter"])
def test_runs_through_a_recipe(name):
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.task import build_task
    from leanfit.engine.run import run_recipe

    t = build_task("digits-mlp")
    r = run_recipe(Recipe.from_dict({"task": {"name": "digits-mlp"}, "adapter": {"name": name},
                                     "optimizer": {"name": "adamw", "lr": 1e-2},
                                     "schedule": {"epochs": 1, "batch_size": 64}}), task=t)
    assert r.status == "complete" and r.metrics["accuracy"] > 0.5
    assert r.costs["trainable_params"] == RECIPE_TRAINABLE[name]
    assert r.costs["trainable_params"] == registry.get("adapters", name).build({}).param_formula(t.build_model(0), t)
