"""Numerical tests of the data selectors' pure functions against the papers' formulas, hand-computed."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leanfit.methods.data._common import allocate_across_strata
from leanfit.methods.data.el2n_grand import ccs_select, el2n_scores, per_sample_grad_norms, top_fraction
from leanfit.methods.data.forgetting import forgetting_counts, rank_with_random_ties
from leanfit.methods.data.imbalance import (class_balanced_weights, class_counts, cooldown_temperature,
                                            temperature_probs, upsample_indices, upweight_weights)
from leanfit.methods.data.momentum import difficulty_weights, ema_update
from leanfit.methods.data.random_subset import random_subset, rs2_schedule
from leanfit.methods.data.reference_loss import band_select, color_scores
from leanfit.methods.data.s2l import s2l_select
from leanfit.engine.task import default_forward


def g(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- EL2N / GraNd (2107.07075) --------------------------------------------------------------------------------
def test_el2n_is_error_vector_norm():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    s = el2n_scores(p, torch.tensor([0, 1]))
    assert s.tolist() == pytest.approx([math.sqrt(0.3**2 + 0.2**2 + 0.1**2), math.sqrt(0.7**2 + 0.8**2 + 0.1**2)])


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        return self.w(x)


def test_grand_equals_el2n_times_input_norm_for_softmax_regression():
    # For logits = W x, ∇_W CE = (p − y) xᵀ, so ‖∇_W‖_F = ‖p − y‖₂ · ‖x‖₂ (GraNd = EL2N·‖x‖).
    torch.manual_seed(0)
    m, x, y = Linear(), torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    gn = per_sample_grad_norms(m, default_forward, {"x": x, "labels": y, "index": torch.arange(6)})
    expect = el2n_scores(m(x).softmax(-1), y) * x.norm(dim=1)
    assert torch.allclose(gn, expect.detach(), atol=1e-6)


def test_grand_matches_per_sample_backward_loop():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    m[0].weight.requires_grad_(False)  # only trainable params count
    fwd = lambda model, b: model(b["x"])  # noqa: E731
    x, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 1])
    gn = per_sample_grad_norms(m, fwd, {"x": x, "labels": y})
    for i in range(4):
        m.zero_grad()
        F.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
        ref = torch.sqrt(sum(p.grad.pow(2).sum() for p in m.parameters() if p.requires_grad))
        assert gn[i].item() == pytest.approx(ref.item(), rel=1e-5)


def test_top_fraction_keeps_hardest():
    assert top_fraction(torch.tensor([0.1, 0.9, 0.5, 0.7]), 2).tolist() == [1, 3]


# ---- CCS (2210.15809) and the stratified allocation ---------------------------------------------------------
def test_allocation_smallest_stratum_first():
    strata = torch.tensor([0] * 1 + [1] * 5 + [2] * 10)
    out = allocate_across_strata(strata, 9, g())
    counts = torch.bincount(strata[out], minlength=3).tolist()
    assert counts == [1, 4, 4]  # 1 = min(1, 9//3); 4 = min(5, 8//2); 4 = min(10, 4//1)
    assert len(out.unique()) == 9


def test_ccs_drops_hardest_and_covers_strata():
    scores = torch.arange(10.0)
    out = ccs_select(scores, k=4, strata=2, hard_cut=0.2, generator=g())
    assert 8 not in out and 9 not in out  # the hardest 20% are cut
    assert (out < 4).sum() == 2 and (out >= 4).sum() == 2  # bins [0, 3.5) and [3.5, 7]: two rows each


# ---- forgetting (1812.05159) ---------------------------------------------------------------------------------
def test_forgetting_counts_transitions_and_never_learned():
    correct = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)  # [T=4, n=3]
    assert forgetting_counts(correct).tolist() == [2.0, math.inf, 0.0]


def test_forgetting_ranking_puts_never_learned_first():
    s = torch.tensor([0.0, math.inf, 2.0, 0.0, 1.0])
    assert rank_with_random_ties(s, 3, g()).tolist() == [1, 2, 4]


# ---- reference-model loss (2405.20541) and CoLoR-Filter (2406.10670) -----------------------------------------
def test_band_select():
    s = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0])
    assert band_select(s, 2, "low").tolist() == [1, 3]
    assert band_select(s, 2, "high").tolist() == [0, 4]
    assert band_select(s, 3, "medium").tolist() == [2, 3, 4]  # losses 2, 3, 4 around the median 3


def test_color_score_is_conditional_minus_prior_loss():
    prior, cond = torch.tensor([2.0, 1.0, 3.0]), torch.tensor([1.0, 1.0, 3.5])
    s = color_scores(prior, cond)
    assert s.tolist() == [-1.0, 0.0, 0.5]
    assert torch.argsort(s)[0].item() == 0  # the row whose loss dropped most is kept first


# ---- S2L (2403.07384) ---------------------------------------------------------------------------------------
def test_s2l_samples_evenly_across_trajectory_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[3.0, 2.0, 1.0], [1.0, 0.5, 0.2], [0.1, 0.05, 0.01]])
    sizes = [2, 4, 10]
    traj = torch.cat([c + 0.01 * torch.randn(n, 3) for c, n in zip(centres, sizes)])
    group = torch.tensor(sum(([i] * n for i, n in enumerate(sizes)), []))
    out = s2l_select(traj, 6, clusters=3, seed=0, generator=g())
    assert sorted(torch.bincount(group[out], minlength=3).tolist()) == [2, 2, 2]


# ---- random / RS2 (2305.18424) ------------------------------------------------------------------------------
def test_random_subset_size_and_unique():
    s = random_subset(100, 0.3, g())
    assert len(s) == 30 and len(s.unique()) == 30


def test_rs2_without_replacement_covers_all_rows_before_repeating():
    plan = rs2_schedule(10, 0.3, 4, g())
    assert all(len(p) == 3 and len(p.unique()) == 3 for p in plan)
    first3 = torch.cat(plan[:3])
    assert len(first3.unique()) == 9  # no row repeats within a pass
    assert len(torch.cat(plan).unique()) == 10  # the leftover row opens epoch 4


@pytest.mark.parametrize("n, fraction", [(300, 0.3), (301, 0.3), (100, 0.37), (7, 0.5)])
def test_rs2_counts_stay_within_one_of_ideal_over_many_passes(n, fraction):
    """Without replacement across passes: after E epochs every row was drawn E·k/n times, ±1 (issue 13: 300 rows
    at 30% gave counts 3–7 after 20 epochs, ideal 6)."""
    epochs = 23
    plan = rs2_schedule(n, fraction, epochs, g())
    k = len(plan[0])
    assert all(len(p) == k and len(p.unique()) == k for p in plan)  # a row at most once per epoch
    counts = torch.bincount(torch.cat(plan), minlength=n).float()
    ideal = epochs * k / n
    assert (counts - ideal).abs().max() <= 1, (counts.min().item(), counts.max().item(), ideal)


# ---- imbalance (2410.04579, 1901.05555) ---------------------------------------------------------------------
def test_temperature_probs():
    c = torch.tensor([90.0, 10.0])
    assert temperature_probs(c, 1.0).tolist() == pytest.approx([0.9, 0.1])
    assert temperature_probs(c, 2.0).tolist() == pytest.approx([0.75, 0.25])  # √.9 : √.1 = 3 : 1
    assert temperature_probs(c, math.inf).tolist() == pytest.approx([0.5, 0.5])


def test_upweight_equals_scalarization_objective():
    labels = torch.tensor([0] * 9 + [1])
    w = upweight_weights(labels, math.inf)
    assert w.tolist() == pytest.approx([0.5 * 10 / 9] * 9 + [5.0])
    losses = torch.rand(10)
    scalarized = 0.5 * losses[:9].mean() + 0.5 * losses[9]  # Σ_c p_c L_c
    assert (w * losses).mean().item() == pytest.approx(scalarized.item(), rel=1e-5)


def test_upsample_frequencies_follow_temperature_distribution():
    labels = torch.tensor([0] * 90 + [1] * 10)
    idx = upsample_indices(labels, 2.0, 40000, g())
    freq = torch.bincount(labels[idx], minlength=2).double() / len(idx)
    assert freq.tolist() == pytest.approx([0.75, 0.25], abs=0.01)


def test_cooldown_schedule_holds_then_cools():
    assert [cooldown_temperature(e, 6, 10.0, 1.0, 0.5) for e in range(6)] == [10.0, 10.0, 10.0, 10.0, 5.5, 1.0]


def test_class_balanced_weights_effective_number():
    counts = torch.tensor([100.0, 10.0]).double()
    w = class_balanced_weights(counts, 0.9)
    raw = [(1 - 0.9) / (1 - 0.9 ** 100), (1 - 0.9) / (1 - 0.9 ** 10)]
    assert w.tolist() == pytest.approx([2 * r / sum(raw) for r in raw])
    assert class_balanced_weights(counts, 0.0).tolist() == pytest.approx([1.0, 1.0])  # β = 0: no reweighting


def test_class_counts():
    assert class_counts(torch.tensor([0, 2, 2]), 4).tolist() == [1.0, 0.0, 2.0, 0.0]


# ---- momentum difficulty (2404.01579) -----------------------------------------------------------------------
def test_ema_and_weights():
    d, seen = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    ema_update(d, seen, torch.tensor([0, 1]), torch.tensor([1.0, 3.0]), 0.9)  # first sighting: d = loss
    ema_update(d, seen, torch.tensor([0]), torch.tensor([2.0]), 0.9)  # 0.9·1 + 0.1·2
    assert d.tolist() == pytest.approx([1.1, 3.0, 0.0])
    w = difficulty_weights(torch.tensor([1.0, 3.0, 0.0]), torch.tensor([True, True, False]), 1.0, 0.01, 100.0)
    assert w.tolist() == pytest.approx([0.5, 1.5, 1.0])  # unseen row stays at 1
    w0 = difficulty_weights(torch.tensor([1.0, 3.0]), torch.tensor([True, True]), 0.0, 0.01, 100.0)
    assert w0.tolist() == pytest.approx([1.0, 1.0])  # γ = 0: plain training


def test_grand_fallback_without_vmap_gives_same_norms(monkeypatch):
    import torch.func

    torch.manual_seed(2)
    m, x, y = Linear(), torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    batch = {"x": x, "labels": y}
    fast = per_sample_grad_norms(m, default_forward, batch)

    def no_vmap(*a, **k):
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(torch.func, "vmap", no_vmap)
    slow = per_sample_grad_norms(m, default_forward, batch)
    assert torch.allclose(fast, slow, atol=1e-6)
