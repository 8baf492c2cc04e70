"""Numerical tests for the optimizers axis: MeZO, FRUGAL and SANIA against their papers' equations written out
here; the library wrappers against pytorch-optimizer itself; state memory ratios; LR schedules."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from leanfit.engine import registry
from leanfit.engine.task import is_head
from leanfit.engine.errors import ConfigError
from leanfit.engine.meters import optimizer_state_bytes
from leanfit.methods.optim.frugal import frugal_update_
from leanfit.methods.optim.mezo import direction, spsa_projected_grad
from leanfit.methods.optim.sania import SaniaOptimizer


def build(name, params, model):
    return registry.get("optim", name).build(params).build(list(model.named_parameters()))


# ---- MeZO (2305.17333) ----------------------------------------------------------------------------------------
def quad_problem():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = A @ A.T + torch.eye(5, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    theta = torch.nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))
    W = torch.nn.Parameter(torch.randn(3, 5, generator=g, dtype=torch.float64))

    def f(t=None, w=None):
        t = theta if t is None else t
        w = W if w is None else w
        return 0.5 * t @ A @ t + b @ t + 0.25 * (w * w).sum() + (w @ t).sum()

    return theta, W, f


def test_mezo_projected_grad_is_two_point_difference_along_seeded_direction():
    theta, W, f = quad_problem()
    t0, w0 = theta.detach().clone(), W.detach().clone()
    eps, seed = 1e-3, 1234
    pg, lp, lm = spsa_projected_grad([theta, W], f, eps, seed)
    zt, zw = direction([theta, W], seed)
    with torch.no_grad():  # the two-point finite difference, computed independently of MeZO's in-place updates
        fd = (f(t0 + eps * zt, w0 + eps * zw) - f(t0 - eps * zt, w0 - eps * zw)) / (2 * eps)
    assert pg == pytest.approx(float(fd), rel=1e-9)
    # for a quadratic the central difference is exact: equals the directional derivative ∇f·z
    theta2, W2 = torch.nn.Parameter(t0.clone()), torch.nn.Parameter(w0.clone())
    f(theta2, W2).backward()
    assert pg == pytest.approx(float(theta2.grad @ zt + (W2.grad * zw).sum()), rel=1e-6)
    # parameters are restored after the in-place perturbations (up to float rounding)
    assert torch.allclose(theta.detach(), t0, atol=1e-12) and torch.allclose(W.detach(), w0, atol=1e-12)
    assert direction([theta], seed)[0].equal(zt) and not direction([theta], seed + 1)[0].equal(zt)


def test_mezo_step_is_zo_sgd_and_keeps_no_state():
    theta, W, f = quad_problem()
    model = torch.nn.Module()
    model.theta, model.W = theta, W
    opt = build("mezo", {"lr": 1e-2, "eps": 1e-3, "seed": 3}, model)
    assert opt.forward_passes_per_step == 2
    t0, w0 = theta.detach().clone(), W.detach().clone()
    with torch.no_grad():
        opt.step(f)
    seed = 3 * 1_000_003 + 0
    zw, zt = direction([W, theta], seed)  # groups: ≥2-D first, then 1-D (same order MeZO draws z in)
    pg = opt.last_projected_grad
    assert torch.allclose(theta.detach(), t0 - 1e-2 * pg * zt, atol=1e-10)
    assert torch.allclose(W.detach(), w0 - 1e-2 * pg * zw, atol=1e-10)
    assert optimizer_state_bytes(opt) == 0
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


def test_mezo_perturbation_passes_run_without_dropout():
    """Through the Trainer, MeZO's two losses are taken in eval mode: with dropout on they would differ by their
    masks and the projected gradient would be noise (issue 13: 1.28, −0.81, 6.18 ... vs the true 0.03)."""
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.task import Task
    from leanfit.engine.trainer import Trainer

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 8, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    data = {"x": x, "labels": y}
    task = Task("toy", None, data, data, data, 3, head=(), forward=lambda m, b: m(b["x"]))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 3))
    theta0 = [p.detach().clone() for p in model.parameters()]
    opt = build("mezo", {"lr": 1e-12, "eps": 1e-4, "seed": 5}, model)
    Trainer(task, model, opt, Schedule(epochs=1, batch_size=32), evaluate=False, measure_memory=False).fit()
    assert model.training  # the previous mode is restored
    # the true directional derivative z·∇L(θ0) in eval mode, z = MeZO's first direction
    ref = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 3))
    with torch.no_grad():
        for p, t in zip(ref.parameters(), theta0):
            p.copy_(t)
    ref.eval()
    F.cross_entropy(ref(x), y).backward()
    groups = [p for p in ref.parameters() if p.ndim >= 2] + [p for p in ref.parameters() if p.ndim < 2]
    z = direction(groups, 5 * 1_000_003)
    dd = sum(float((zi * p.grad).sum()) for zi, p in zip(z, groups))
    assert opt.last_projected_grad == pytest.approx(dd, rel=1e-2, abs=1e-3)


def test_mezo_config_errors_name_field():
    with pytest.raises(ConfigError, match="eps must be > 0"):
        registry.get("optim", "mezo").build({"eps": 0})


@pytest.mark.slow
def test_mezo_memory_is_inference_level_on_minilm():
    from leanfit.engine.recipe import Recipe
    from leanfit.engine.run import run_recipe

    base = {"task": {"name": "minilm-bbc", "n_train": 16, "n_validation": 16, "n_test": 16, "max_length": 32},
            "schedule": {"epochs": 1, "batch_size": 8, "max_steps": 2}}
    zo = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "mezo", "lr": 1e-6}}))
    fo = run_recipe(Recipe.from_dict({**base, "optimizer": {"name": "adamw", "lr": 1e-5}}))
    c, a = zo.costs, fo.costs
    assert c["optimizer_state_bytes"] == 0 and c["activation_bytes"] == 0
    # model-level train memory of MeZO = the parameters only (inference); AdamW adds grads + 2 moments + activations
    assert c["train_memory_bytes"] == c["total_params"] * 4
    assert a["train_memory_bytes"] > 3.5 * c["train_memory_bytes"]


# ---- FRUGAL (2411.07837) --------------------------------------------------------------------------------------
def test_frugal_update_is_adam_on_rows_and_signsgd_elsewhere():
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(6, 4, generator=g)
    grads = [torch.randn(6, 4, generator=g) for _ in range(3)]
    rows = torch.tensor([1, 4])
    lr, lr_free, (b1, b2), eps = 0.01, 0.003, (0.9, 0.99), 1e-8
    p = p0.clone()
    m, v = torch.zeros(2, 4), torch.zeros(2, 4)
    ref = p0.clone()
    rm, rv = torch.zeros(2, 4), torch.zeros(2, 4)
    for t, gr in enumerate(grads, 1):
        frugal_update_(p, gr, rows, m, v, t, lr, lr_free, (b1, b2), eps)
        # the paper's equations, written out
        rm = b1 * rm + (1 - b1) * gr[rows]
        rv = b2 * rv + (1 - b2) * gr[rows] ** 2
        upd = (rm / (1 - b1 ** t)) / ((rv / (1 - b2 ** t)).sqrt() + eps)
        for i in range(6):
            if i in rows.tolist():
                ref[i] = ref[i] - lr * upd[rows.tolist().index(i)]
            else:
                ref[i] = ref[i] - lr_free * torch.sign(gr[i])
    assert torch.allclose(p, ref, atol=1e-6)


def test_frugal_state_is_density_fraction_of_adam():
    torch.manual_seed(0)
    mk = lambda: torch.nn.Sequential(torch.nn.Linear(64, 64, bias=False), torch.nn.ReLU(),  # noqa: E731
                                     torch.nn.Linear(64, 64, bias=False))
    x = torch.randn(8, 64)
    sizes = {}
    for name, params in (("adamw", {}), ("frugal", {"density": 0.25})):
        m = mk()
        opt = build(name, params, m)
        m(x).pow(2).mean().backward()
        opt.step()
        sizes[name] = sum(s["exp_avg"].numel() + s["exp_avg_sq"].numel() for s in opt.state.values())
    assert sizes["frugal"] == sizes["adamw"] // 4


# ---- SANIA (2312.17369) ---------------------------------------------------------------------------------------
def closure_of(opt, loss_fn):
    """The standard PyTorch closure: zero grads, forward, backward, return the loss."""
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    return closure


def test_sania_identity_is_polyak_step():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.tensor([0.3, 0.1, -0.7])
    loss_fn = lambda: (w @ x - 2.0) ** 2  # noqa: E731
    opt = SaniaOptimizer([w], preconditioner="identity", eps=1e-12)
    w0 = w.detach().clone()
    f0 = float(loss_fn().detach())
    grad = 2 * (w0 @ x - 2.0) * x
    opt.step(closure_of(opt, loss_fn))
    assert torch.allclose(w.detach(), w0 - f0 / float(grad @ grad) * grad, atol=1e-6)


@pytest.mark.parametrize("pre", ["adagrad-sqr", "adam-sqr"])
def test_sania_sqr_is_invariant_to_feature_scaling(pre):
    """The paper's claim: with -SQR preconditioners, training on features x' = Vx from w' = V⁻¹w gives
    w'_t = V⁻¹ w_t (the same predictions) at every step."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    V = torch.tensor([1.0, 100.0, 0.01, 7.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    ws = torch.nn.Parameter(torch.ones(4, dtype=torch.float64) / V)
    o1 = SaniaOptimizer([w], preconditioner=pre, eps=1e-30)
    o2 = SaniaOptimizer([ws], preconditioner=pre, eps=1e-30)
    for t in range(5):
        xb, yb = X[t * 6:(t + 1) * 6], y[t * 6:(t + 1) * 6]
        o1.step(closure_of(o1, lambda: ((xb @ w - yb) ** 2).mean()))
        o2.step(closure_of(o2, lambda: (((xb * V) @ ws - yb) ** 2).mean()))
        o1.zero_grad(), o2.zero_grad()
    assert torch.allclose(ws.detach() * V, w.detach(), rtol=1e-8)
    # plain SGD is not invariant (control: the test can fail)
    a = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(4, dtype=torch.float64) / V)
    for p, s in ((a, torch.ones(4, dtype=torch.float64)), (b, V)):
        ((X[:6] * s) @ p - y[:6]).pow(2).mean().backward()
        with torch.no_grad():
            p -= 1e-3 * p.grad
    assert not torch.allclose(b.detach() * V, a.detach(), rtol=1e-3)


# ---- library wrappers -----------------------------------------------------------------------------------------
def mlp(width=32, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                               torch.nn.ReLU(), torch.nn.Linear(width, 4))


def run(opt, m, steps=3):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g)
    torch.manual_seed(7)  # Gravity draws its initial velocity from the global RNG
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return opt


def mlp_with_norm(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def reference_groups(model, weight_decay):
    """Common practice, written out from the module types (not from leanfit's grouping): Linear weights decay;
    Linear biases and LayerNorm weight/bias do not."""
    lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    return [{"params": [m.weight for m in lin], "weight_decay": weight_decay},
            {"params": [m.bias for m in lin] + [p for m in norms for p in (m.weight, m.bias)], "weight_decay": 0.0}]


WRAPPED = ["adan", "lion", "adabelief", "adamp", "sgdp", "spam", "stablespam", "sgdsai", "adafactor", "gravity",
           "prodigy", "schedulefreeadamw", "soap", "came"]


@pytest.mark.parametrize("name", WRAPPED)
def test_wrapper_equals_library_with_same_groups(name):
    """Same trajectory as the library optimizer given the groups built above, with a non-zero weight decay (most
    defaults are 0, which would hide a wrong grouping). Control: decaying every parameter gives another result."""
    from pytorch_optimizer import load_optimizer

    entry = registry.get("optim", name)
    has_wd = "weight_decay" in vars(entry.make_config({}))
    params = {"weight_decay": 0.1} if has_wd else {}
    kw = {k: v for k, v in vars(entry.make_config(params)).items() if k != "weight_decay"}
    m1, m2 = mlp_with_norm(), mlp_with_norm()
    run(build(name, params, m1), m1)
    run(load_optimizer(name)(reference_groups(m2, 0.1) if has_wd else list(m2.parameters()), **kw), m2)
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    if has_wd:  # the grouping is visible in the result
        m3 = mlp_with_norm()
        run(load_optimizer(name)([{"params": list(m3.parameters()), "weight_decay": 0.1}], **kw), m3)
        assert not all(torch.equal(a, b) for a, b in zip(m1.parameters(), m3.parameters()))


# prodigy skips the whole step when every gradient is zero (its d-denominator is 0); soap's first step only sets
# up its preconditioner, so it gets a second one
DECAY_STEPS = {"soap": 2}


@pytest.mark.parametrize("name", ["sgd", "adamw"] + [n for n in WRAPPED if n not in ("gravity", "prodigy")])
def test_weight_decay_skips_biases_and_norms(name):
    """With zero gradients a fresh optimizer's step is weight decay alone: the 1-D parameters (biases, LayerNorm
    weight and bias) must be bit-for-bit unchanged and every 2-D weight must shrink."""
    m = mlp_with_norm()
    opt = build(name, {"weight_decay": 0.1, "lr": 0.01}, m)
    before = [p.detach().clone() for p in m.parameters()]
    for _ in range(DECAY_STEPS.get(name, 1)):
        for p in m.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    shapes = [p.ndim for p in m.parameters()]
    assert shapes.count(1) == 5 and shapes.count(2) == 3
    for p, b in zip(m.parameters(), before):
        if p.ndim == 1:
            assert torch.equal(p.detach(), b), f"{name} decayed a 1-D parameter"
        else:
            assert float(p.detach().norm()) < float(b.norm()) * (1 - 1e-5), f"{name} did not decay a 2-D weight"
    if name in ("sgd", "adamw"):  # torch's decay on the weights: exactly p ← (1 − lr·wd) p
        for p, b in zip(m.parameters(), before):
            if p.ndim == 2:
                assert torch.allclose(p.detach(), b * (1 - 0.01 * 0.1), rtol=1e-6, atol=0)


def test_galore_and_fira_project_2d_weights():
    m = mlp(64)
    opt = build("galore", {"rank": 4, "update_proj_gap": 10}, m)
    mats = [g for g in opt.param_groups if "rank" in g]
    assert len(mats) == 1 and all(p.ndim == 2 for p in mats[0]["params"]) and mats[0]["rank"] == 4
    run(opt, m)
    assert any("projector" in s for s in opt.state.values())
    with pytest.raises(ConfigError, match="rank must be an integer ≥ 1"):
        registry.get("optim", "fira").build({"rank": 0})


def test_muon_orthogonalises_hidden_matrices_only():
    m = mlp()
    named = [("encoder.0.weight", m[0].weight), ("encoder.0.bias", m[0].bias), ("classifier.weight", m[4].weight)]
    head = SimpleNamespace(is_head=lambda n: is_head(n, ("classifier",)))  # the task names its head
    opt = registry.get("optim", "muon").build({}).build(named, head)
    use = {id(p): g["use_muon"] for g in opt.param_groups for p in g["params"]}
    assert use[id(m[0].weight)] and not use[id(m[0].bias)] and not use[id(m[4].weight)]


def adam_bytes(m):
    return sum(p.numel() * 4 * 2 for p in m.parameters())


def test_state_bytes_sgdsai_half_galore_lower_adafactor_factored():
    sizes = {}
    for name, params in (("adamw", {}), ("sgdsai", {}), ("galore", {"rank": 8}), ("adafactor", {})):
        m = mlp(128)
        sizes[name] = optimizer_state_bytes(run(build(name, params, m), m, 2))
    assert sizes["adamw"] >= adam_bytes(m)
    assert 0.45 < sizes["sgdsai"] / sizes["adamw"] < 0.55, sizes  # momentum + a per-tensor scalar
    assert sizes["galore"] < 0.5 * sizes["adamw"], sizes  # rank-8 moments of 128×128 matrices
    assert sizes["adafactor"] < 0.7 * sizes["adamw"], sizes  # row/col second-moment factors (momentum in bf16)


def test_unsupported_library_optimizer_explains_why():
    with pytest.raises(ConfigError, match="adahessian.*Hessian-vector"):
        build("adahessian", {}, mlp())


# ---- LR schedules (Trainer) -----------------------------------------------------------------------------------
def lrs(schedule):
    from leanfit.engine.recipe import Schedule
    from leanfit.engine.task import build_task
    from leanfit.engine.trainer import Trainer

    task = build_task("digits-mlp", n_train=320)
    model = task.build_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []

    class Rec:
        def __getattr__(self, hook):
            return lambda s: seen.append(s.optimizer.param_groups[0]["lr"]) if hook == "before_step" else None

    Trainer(task, model, opt, Schedule(**schedule), [Rec()], 0).fit()
    return seen


def test_warmup_cosine_schedule():
    seen = lrs({"epochs": 1, "batch_size": 32, "lr_schedule": "cosine", "warmup_ratio": 0.2})
    total, warm = len(seen), int(0.2 * len(seen))
    expect = [0.1 * ((s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
              for s in range(total)]
    assert seen == pytest.approx(expect, rel=1e-9)


def test_onecycle_schedule_peaks_at_lr():
    seen = lrs({"epochs": 2, "batch_size": 32, "lr_schedule": "onecycle", "warmup_ratio": 0.3})
    peak = max(range(len(seen)), key=seen.__getitem__)
    assert seen[peak] == pytest.approx(0.1) and seen[0] < 0.01 and seen[-1] < 1e-3
    assert abs(peak - 0.3 * len(seen)) <= 1.5


@pytest.mark.parametrize("name, params", [("adamw", {"lr": 1e-2, "weight_decay": 0.1}),
                                          ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01})])
def test_fused_default_matches_the_unfused_update(name, params):
    """The default (fused where torch has it) gives the same weights as torch's per-tensor implementation."""
    runs = {}
    for fused in (None, False):
        m = mlp()
        opt = build(name, {**params, "fused": fused}, m)
        assert bool(opt.defaults.get("fused")) == (fused is None)  # the fast path is the default on this build
        runs[fused] = run(opt, m, steps=5)
    for a, b in zip(*(r.param_groups[0]["params"] for r in runs.values())):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
