"""Meters against hand counts on tiny models."""
import pytest
import torch
from torch import nn

from leanfit.engine.meters import count_flops, count_params, optimizer_state_bytes, saved_activation_bytes
from leanfit.engine.recipe import Schedule
from leanfit.engine.task import Task
from leanfit.engine.trainer import Trainer

B, D, H, C = 16, 4, 8, 3


def tiny_task(n=B):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, D, generator=g)
    y = torch.randint(0, C, (n,), generator=g)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(D, H)
            self.head = nn.Linear(H, C)

        def forward(self, x):
            return self.head(torch.relu(self.fc(x)))

    def build(seed):
        torch.manual_seed(seed)
        return Net()

    return Task("tiny", build, *[{"x": x, "labels": y}] * 3, C, head=("head",))


def test_train_flops_equal_hand_count():
    task = tiny_task()
    model = task.build_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = Trainer(task, model, opt, Schedule(epochs=1, batch_size=B)).fit()
    fwd = 2 * B * (D * H + H * C)  # two matmuls
    # backward: head needs dW (B·H·C) and dX (B·H·C); fc needs only dW (its input needs no grad)
    bwd = 2 * B * H * C * 2 + 2 * B * D * H
    assert s.step == 1
    assert s.flops == fwd + bwd


def test_frozen_backbone_flops_drop_exactly():
    task = tiny_task()
    model = task.build_model(0)
    model.fc.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    s = Trainer(task, model, opt, Schedule(epochs=1, batch_size=B, frozen_prefix="eval")).fit()
    assert s.flops == 2 * B * (D * H + H * C) + 2 * B * H * C  # recomputed every step: forward + head dW only
    model = task.build_model(0)
    model.fc.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    s = Trainer(task, model, opt, Schedule(epochs=1, batch_size=B)).fit()  # cached (the default for head-only)
    assert s.cache_flops == 2 * B * (D * H + H * C)  # one forward of the whole model over the train rows
    assert s.flops == s.cache_flops + 2 * B * H * C + 2 * B * H * C  # then the head alone: forward + dW


def test_flops_multiply_by_steps_and_batch_shapes():
    task = tiny_task(n=40)  # batches of 16, 16, 8
    model = task.build_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = Trainer(task, model, opt, Schedule(epochs=2, batch_size=16)).fit()
    per_sample = 2 * (D * H + H * C) + 2 * H * C * 2 + 2 * D * H
    assert s.step == 6 and s.samples_seen == 80
    assert s.flops == per_sample * 80


def test_eager_attention_is_counted_on_a_tiny_bert():
    from transformers import BertConfig, BertModel

    from leanfit.tasks.text import PooledClassifier

    Bt, T, Hd, I, L, nh = 2, 8, 32, 64, 2, 4
    enc = BertModel(BertConfig(vocab_size=50, hidden_size=Hd, num_hidden_layers=L, num_attention_heads=nh,
                               intermediate_size=I, max_position_embeddings=T, attn_implementation="eager"),
                    add_pooling_layer=False)
    model = PooledClassifier(enc, Hd, 5)
    ids = torch.randint(0, 50, (Bt, T))
    flops, _ = count_flops(lambda: model(ids, torch.ones_like(ids)))
    per_layer = 2 * Bt * T * Hd * Hd * 4 + 2 * Bt * T * T * Hd * 2 + 2 * Bt * T * Hd * I * 2
    assert flops == L * per_layer + 2 * Bt * Hd * 5


def test_optimizer_state_bytes_equal_sum_of_state_tensors():
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 3))
    n = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters())
    assert optimizer_state_bytes(opt) == 0  # lazy state
    model(torch.randn(4, 10)).sum().backward()
    opt.step()
    # exp_avg + exp_avg_sq in fp32 for every parameter, plus a 0-d fp32 `step` per parameter tensor
    assert optimizer_state_bytes(opt) == 2 * 4 * n + 4 * 4
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sgd.step()
    assert optimizer_state_bytes(sgd) == 4 * n


def test_param_counts_tied_weights_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    assert count_params(model) == (40, 40)
    emb.weight.requires_grad_(False)
    assert count_params(model) == (0, 40)


def test_saved_activation_bytes_hand_count():
    w = nn.Parameter(torch.randn(D, H))
    x = torch.randn(B, D)
    with saved_activation_bytes() as act:
        y = torch.relu(x @ w)  # mm saves x (w is a Parameter, excluded); relu saves its output
        y.sum().backward()
    assert act[0] == B * D * 4 + B * H * 4


def test_digits_mlp_param_counts_match_architecture():
    from leanfit import Recipe
    from leanfit.engine.run import build_run
    from leanfit.engine.meters import count_params

    full = 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10
    m = build_run(Recipe.from_dict({"task": "digits-mlp"})).model
    assert count_params(m) == (full, full)
    m = build_run(Recipe.from_dict({"task": "digits-mlp", "adapter": "head_only"})).model
    assert count_params(m) == (128 * 10 + 10, full)
    m = build_run(Recipe.from_dict({"task": "digits-mlp", "adapter": {"name": "lora", "r": 4}})).model
    lora = 4 * (64 + 128) + 4 * (128 + 128)
    head = 128 * 10 + 10  # peft modules_to_save keeps a trainable copy of the head
    assert count_params(m) == (lora + head, full + lora + head)


# ---- the optimizer step is a cost too (issue 13) --------------------------------------------------------------
def test_optimizer_step_flops_are_counted_once_per_step_and_leave_training_unchanged():
    from leanfit import Recipe, run_recipe
    from leanfit.engine.run import build_run

    base = {"task": "digits-mlp", "schedule": {"epochs": 1, "batch_size": 64, "max_steps": 3}, "seed": 0}
    adam = run_recipe(Recipe.from_dict({**base, "optimizer": "adamw"}))
    muon = run_recipe(Recipe.from_dict({**base, "optimizer": "muon"}))
    assert adam.costs["optimizer_flops"] == 0  # element-wise updates: no matmul FLOPs
    assert muon.costs["optimizer_flops"] > 3 * adam.costs["train_flops"]  # Newton–Schulz matmuls dominate here
    assert muon.costs["train_flops"] == adam.costs["train_flops"] + muon.costs["optimizer_flops"]
    # metering the step (on a copy) changes nothing: the same 3 steps by hand give bit-identical weights
    run = build_run(Recipe.from_dict({**base, "optimizer": "muon"}))
    run.trainer(evaluate=False).fit()
    ref = build_run(Recipe.from_dict({**base, "optimizer": "muon"}))
    torch.manual_seed(0)
    order = torch.randperm(ref.task.n_train, generator=torch.Generator().manual_seed(0))
    for idx in order.split(64)[:3]:
        b = ref.task.batch("train", idx)
        torch.nn.functional.cross_entropy(ref.task.forward(ref.model, b), b["labels"]).backward()
        ref.optimizer.step()
        ref.optimizer.zero_grad(set_to_none=True)
    assert all(torch.equal(a, b) for a, b in zip(run.model.parameters(), ref.model.parameters()))


def test_parameters_without_gradient_are_frozen_not_counted_and_not_perturbed():
    from leanfit import Recipe, run_recipe

    class WithDeadLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.dead, self.head = nn.Linear(D, H), nn.Linear(H, H), nn.Linear(H, C)

        def forward(self, x):
            return self.head(torch.relu(self.fc(x)))  # self.dead never runs (like BERT's pooler here)

    t = tiny_task(64)
    t.build_model = lambda seed: (torch.manual_seed(seed), WithDeadLayer())[1]
    for opt in ("adamw", {"name": "mezo", "lr": 1e-3}):
        r = run_recipe(Recipe.from_dict({"task": "digits-mlp", "optimizer": opt, "schedule": {"epochs": 2}}), task=t)
        assert r.costs["trainable_params"] == (D * H + H) + (H * C + C), r.costs
        assert r.costs["total_params"] == r.costs["trainable_params"] + H * H + H
        assert sorted(r.extra["frozen_unused"]) == ["dead.bias", "dead.weight"]
