"""Contract tests for every registered adapter (generated from the registry), on digits-mlp and a tiny random
BERT: identity at init where the paper says so, only adapter + head params train, trainable count equals the
paper's formula (written out here from the layer shapes), merged == unmerged forward where mergeable, safetensors save/load round-trip (in-process for
each method, and once in a fresh process for all)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.engine.task import is_head
from leanfit.methods.adapters.io import load_adapter, save_adapter
from leanfit.engine.task import build_task
from leanfit.engine.task import Task

METHODS = [e.name for e in registry.list_methods("adapters")]


def tiny_bert_task(n: int = 8, seq: int = 6) -> Task:
    from transformers import BertConfig, BertModel

    from leanfit.tasks.text import PooledClassifier

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=16, attn_implementation="eager")
        return PooledClassifier(BertModel(cfg, add_pooling_layer=False), 32, 3)

    g = torch.Generator().manual_seed(0)
    data = lambda: {"input_ids": torch.randint(1, 50, (n, seq), generator=g),  # noqa: E731
                    "attention_mask": torch.ones(n, seq, dtype=torch.long),
                    "labels": torch.randint(0, 3, (n,), generator=g)}
    return Task("tiny-bert", build, data(), data(), data(), 3, head=("classifier",), target_modules=("query", "value"))


TASKS = {"digits-mlp": lambda: build_task("digits-mlp"), "tiny-bert": tiny_bert_task}
_CACHE: dict[str, Task] = {}


def task_of(name: str) -> Task:
    if name not in _CACHE:
        _CACHE[name] = TASKS[name]()
    return _CACHE[name]


def forward(task: Task, model: nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return task.forward(model, task.batch("validation", torch.arange(8)))


def adapted(name: str, task: Task):
    if name == "ln_tuning" and task.name == "digits-mlp":
        with pytest.raises(ConfigError, match="LayerNorm|target_modules"):
            registry.get("adapters", name).build({}).apply(task.build_model(0), task)
        pytest.skip("digits-mlp has no LayerNorm; the clear error is checked above")
    adapter = registry.get("adapters", name).build({})
    base = task.build_model(0)
    ref = forward(task, base)
    originals = dict(base.named_parameters())
    formula = adapter.param_formula(base, task)
    model = adapter.apply(base, task)
    return adapter, model, ref, originals, formula


def perturb(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


ALLOWED_ORIGINAL = {  # original (pre-adapter) tensors a method may train, besides the head
    "full": lambda n: True,
    "bitfit": lambda n: n.endswith("bias"),
    "houlsby": lambda n: "LayerNorm" in n,
}


# ---- trainable counts written out from each paper's formula and the two models' known shapes -------------------
# Nothing here is read from leanfit or from the model: the shapes are those the task builders use.
#   digits-mlp: targets fc1 (k=64 → d=128) and fc2 (k=128 → d=128); head Linear(128, 10); no LayerNorm;
#               every Linear has a bias.
#   tiny-bert:  targets query and value of 2 layers: four 32×32 layers (k = d = 32); head Linear(32, 3);
#               LayerNorms: embeddings + 2 per layer = 5 of width 32 (weight + bias each).
# (k = in_features, d = out_features.) The asymmetric fc1 of digits catches a d/k swap.
SHAPES = {
    "digits-mlp": dict(layers=[(64, 128), (128, 128)], head=128 * 10 + 10, layernorm=0,
                       biases=128 + 128,  # fc1.bias, fc2.bias (head excluded: it trains anyway)
                       total=(64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)),
    "tiny-bert": dict(layers=[(32, 32)] * 4, head=32 * 3 + 3, layernorm=5 * 2 * 32,
                      # per layer: q, k, v, attention-output, output dense (32 each), intermediate (64), two
                      # LayerNorm shifts (32 each); plus the embeddings' LayerNorm shift
                      biases=2 * (5 * 32 + 64 + 2 * 32) + 32,
                      total=(50 + 16 + 2) * 32 + 2 * 32  # word/position/type embeddings + LayerNorm
                      + 2 * (4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 2 * 32)
                      + 32 * 3 + 3),
}


def _lokr(k: int, d: int, r: int = 8) -> int:
    """LoKr (LyCORIS 2309.14859): ΔW = C ⊗ W2. peft splits each side into its most balanced factor pair
    (128 = 8·16, 64 = 8·8, 32 = 4·8); C is (smaller d factor × smaller k factor). W2 is stored dense when
    r ≥ half its larger side, else as a rank-r product B·A."""
    split = {128: (8, 16), 64: (8, 8), 32: (4, 8)}
    (d1, d2), (k1, k2) = split[d], split[k]
    w2 = d2 * k2 if r >= max(d2, k2) / 2 else r * (d2 + k2)
    return d1 * k1 + w2


def _per_layer(f):
    return lambda s: sum(f(k, d) for k, d in s["layers"])


# defaults: LoRA/DoRA/LoHa/LoKr/HRA r=8, VeRA r=256, OFT block 32, BOFT block 4 × 1 factor, VB-LoRA r=4 with
# 64 vectors of length 8, FourierFT n=1000, LoRA-XS r=16, NOLA 64+64 bases, ShareLoRA r=8, Houlsby and Compacter
# bottleneck m=16 (Compacter n=4), ETHER 1 block. Each count excludes the head, added below.
PAPER_COUNT = {
    "full": lambda s: s["total"] - s["head"],
    "head_only": lambda s: 0,
    "lora": _per_layer(lambda k, d: 8 * (d + k)),                       # B ∈ R^{d×r}, A ∈ R^{r×k}
    "dora": _per_layer(lambda k, d: 8 * (d + k) + d),                   # + magnitude m ∈ R^d
    "vera": _per_layer(lambda k, d: 256 + d),                           # Λ_d ∈ R^r, Λ_b ∈ R^d
    "ia3": _per_layer(lambda k, d: d),                                  # l ∈ R^d (no feed-forward targets)
    "loha": _per_layer(lambda k, d: 2 * 8 * (d + k)),                   # (B1A1) ⊙ (B2A2)
    "lokr": _per_layer(_lokr),
    "oft": _per_layer(lambda k, d: (k // 32) * 32 * 31 // 2),          # k/b skew-symmetric b×b blocks
    "boft": _per_layer(lambda k, d: 1 * (k // 4) * 4 * 4 + d),          # m·(k/b) full b×b blocks + scale s ∈ R^d
    "vblora": lambda s: 64 * 8 + sum(64 * 4 * (k + d) // 8 for k, d in s["layers"]),  # bank + top-k logits
    "ln_tuning": lambda s: s["layernorm"],
    "hra": _per_layer(lambda k, d: 8 * k),                              # r Householder vectors u_i ∈ R^k
    "fourierft": _per_layer(lambda k, d: 1000),                         # n spectral coefficients
    "lora_xs": _per_layer(lambda k, d: min(16, k, d) ** 2),             # R ∈ R^{r×r}
    "nola": _per_layer(lambda k, d: 64 + 64),                           # α ∈ R^{k_A}, β ∈ R^{k_B}
    "share_lora": lambda s: sum(8 * k for k in {k for k, _ in s["layers"]}) + sum(d * 8 for _, d in s["layers"]),
    "ssf": _per_layer(lambda k, d: 2 * d),                              # γ, β ∈ R^d
    "bitfit": lambda s: s["biases"],
    "houlsby": lambda s: sum(2 * 16 * d + 16 + d for _, d in s["layers"]) + s["layernorm"],  # + LayerNorms
    "compacter": lambda s: sum(2 * (d + 16) + 16 + d for _, d in s["layers"]) + 4 ** 3,  # + shared A_i: n³
    "ether": _per_layer(lambda k, d: d),                                # u ∈ R^d
    "ether_plus": _per_layer(lambda k, d: 2 * (d + k)),                 # u, v ∈ R^d and u_r, v_r ∈ R^k
}


def expected_trainable(name: str, task_name: str) -> int:
    s = SHAPES[task_name]
    return PAPER_COUNT[name](s) + s["head"]


def test_every_adapter_has_an_independent_count():
    assert set(METHODS) == set(PAPER_COUNT), "write the paper's count for a new method in PAPER_COUNT"


def test_known_counts_spot_check():
    """A few totals by hand, so the table above cannot drift with the code it checks."""
    assert expected_trainable("lora", "digits-mlp") == 8 * (64 + 128) + 8 * (128 + 128) + 1290 == 4874
    assert expected_trainable("full", "tiny-bert") == 19427
    assert expected_trainable("bitfit", "tiny-bert") == 608 + 99
    assert expected_trainable("lokr", "digits-mlp") == (8 * 8 + 16 * 8) + (8 * 8 + 16 * 16) + 1290


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("name", METHODS)
def test_adapter_contract(name, task_name):
    task = task_of(task_name)
    adapter, model, ref, originals, formula = adapted(name, task)
    out = forward(task, model)
    # identity at init where the paper says so (else: the method must change the function)
    if adapter.identity_at_init:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    else:
        assert not torch.allclose(out, ref, atol=1e-5)
    # only adapter + head params train
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    allowed = ALLOWED_ORIGINAL.get(name, lambda n: False)
    bad = [n for n, p in originals.items() if id(p) in trainable and not is_head(n, task.head) and not allowed(n)]
    assert not bad, f"{name} trains original tensors {bad[:5]}"
    assert trainable, f"{name} left nothing trainable"
    # trainable count == the paper's count written out above from the known shapes; the method's own
    # param_formula (used for reports before training) must agree where it has one
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_train == expected_trainable(name, task_name)
    assert formula is None or formula == n_train


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("name", METHODS)
def test_merge_and_roundtrip(name, task_name, tmp_path):
    task = task_of(task_name)
    adapter, model, _, _, _ = adapted(name, task)
    perturb(model)
    out = forward(task, model)
    # save/load only the adapter tensors through safetensors, onto a fresh base model
    path = save_adapter(model, tmp_path / "a.safetensors", name, adapter.config)
    loaded, _ = load_adapter(task.build_model(0), path, task)
    torch.testing.assert_close(forward(task, loaded), out, atol=1e-6, rtol=0)
    n_saved = len(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(path)))
    assert n_saved == sum(1 for p in model.parameters() if p.requires_grad)
    if not adapter.mergeable:
        with pytest.raises(NotImplementedError):
            adapter.merge(model)
        return
    merged = adapter.merge(model)
    torch.testing.assert_close(forward(task, merged), out, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_roundtrip_in_fresh_process(tmp_path):
    """Every method on digits-mlp: save in this process, load in a new one, same logits."""
    task = task_of("digits-mlp")
    expect = {}
    for name in METHODS:
        if name == "ln_tuning":
            continue
        adapter = registry.get("adapters", name).build({})
        model = adapter.apply(task.build_model(0), task)
        perturb(model)
        save_adapter(model, tmp_path / f"{name}.safetensors", name, adapter.config)
        expect[name] = forward(task, model).tolist()
    code = textwrap.dedent(f"""
        import json, torch
        from leanfit.engine.task import build_task
        from leanfit.methods.adapters.io import load_adapter
        task = build_task("digits-mlp")
        out = {{}}
        for name in {sorted(expect)!r}:
            model, _ = load_adapter(task.build_model(0), {str(tmp_path)!r} + f"/{{name}}.safetensors", task)
            model.eval()
            with torch.no_grad():
                out[name] = task.forward(model, task.batch("validation", torch.arange(8))).tolist()
        print(json.dumps(out))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for name in expect:
        torch.testing.assert_close(torch.tensor(got[name]), torch.tensor(expect[name]), atol=1e-6, rtol=0,
                                   msg=lambda m: f"{name}: {m}")
