"""Parity with mergekit's in-memory API (``mergekit.merge_methods.merge_state_dicts`` and the tensor functions in
``mergekit.sparsify`` / ``generalized_task_arithmetic``), checked on small random tensors within 1e-6 wherever the
two definitions coincide. Optional: skipped when mergekit is not installed. Install it without letting pip touch
torch/transformers (mergekit 0.1.5 needs only ``immutables`` at import time for its merge methods)::

    .venv/bin/pip install --no-deps mergekit==0.1.5 immutables==0.21

Where the definitions coincide (compared end to end through ``merge_state_dicts``):
  - linear: Σ w_t θ_t / Σ w_t.
  - task_arithmetic: θ_0 + λ Σ w_t τ_t.
  - ties: trim to the top-k |τ| per tensor, elect γ = sgn Σ_t w_t τ̂_t, disjoint mean, θ_0 + λ τ_m — when
    density·n is an integer (see difference 1) and no entry's weighted sum is exactly 0 (difference 2).
  - dare / dare-ties: compared with the *same* Bernoulli masks (mergekit's ``torch.bernoulli`` call is replaced,
    for the test only, by draws from our seeded generator in our order) and with mergekit's ``rescale=False``,
    ``lambda = λ / density`` (our 1/density rescale moved into λ; see difference 3); dare-ties also with
    ``normalize=True`` (difference 4).
  - della: the keep probabilities are the same affine function of the magnitude rank once ε is translated
    (difference 5); masks compared under the same draws; the election/fusion stage compared end to end by handing
    mergekit the paper's per-entry rescale 1/q_i through the mask (difference 6).

Definitional differences (each pinned by a test below, so a change on either side shows up here):
  1. TIES trim count: ours keeps k = ⌈density·n⌉ entries, mergekit ``max(1, ⌊density·n⌋)``; they differ by one
     entry per tensor when density·n is not an integer.
  2. Sign election when Σ_t w_t τ̂_t is exactly 0 with non-zero entries: mergekit elects +1 (keeps the positive
     entries), ours elects 0 (the entry stays at θ_0).
  3. DARE rescale: ours multiplies kept entries by 1/density (Yu et al. Eq. 2); mergekit's default (``rescale=true``)
     scales each masked tensor to keep its L1 norm, ‖τ‖₁ / ‖m⊙τ‖₁ (equal to 1/density only in expectation).
  4. DARE-TIES fusion: ours takes the TIES disjoint mean; mergekit's ``dare_ties`` default (``normalize=false``)
     sums the agreeing entries.
  5. DELLA ε: mergekit's keep probabilities span [d − ε, d + ε] with endpoints on the smallest / largest magnitude
     (rank step 2ε/(n−1)); ours follow the paper's ε as the full width, q_r = d − ε/2 + ε (r + ½)/n (rank step ε/n).
     Both are linear in the rank with mean d; they coincide for a row length n when ε_ours = 2 ε_mergekit n/(n−1).
     Tensors with more than 2 dims: mergekit ranks along dim 1, ours along the last dim (MiniLM has none).
  6. DELLA rescale: ours (and the paper) divide each kept entry by its own keep probability q_i; mergekit's default
     uses the per-tensor L1 rescale of difference 3.
  7. RNG: ours draws from a seeded ``torch.Generator`` (reproducible without touching global state); mergekit calls
     ``torch.bernoulli`` on the global generator, so the same seed gives different masks.
"""
from __future__ import annotations

import pytest
import torch

mergekit = pytest.importorskip("mergekit", reason="optional parity test: pip install --no-deps mergekit==0.1.5 "
                                                   "immutables==0.21")
from mergekit import sparsify as mks  # noqa: E402
from mergekit.merge_methods import merge_state_dicts  # noqa: E402

from leanfit.methods.merge import arithmetic as A  # noqa: E402

TOL = 1e-6
W = [0.7, 1.0, 1.3]


def rand_sds(n=3, seed=0, rows=6, cols=10):
    """Base + n fine-tunes; tensor sizes (60 and 10 entries) make density·n an integer for density 0.2 / 0.5."""
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(rows, cols, generator=g), "b": torch.randn(cols, generator=g),
            "step": torch.tensor(7)}
    fts = [{"w": base["w"] + torch.randn(rows, cols, generator=g), "b": base["b"] + torch.randn(cols, generator=g),
            "step": torch.tensor(7)} for _ in range(n)]
    return base, fts


def mk(method, base, fts, **params):
    models = {"base": base, **{f"m{i}": sd for i, sd in enumerate(fts)}} if base is not None else \
        {f"m{i}": sd for i, sd in enumerate(fts)}
    return merge_state_dicts(models, method, parameters=params, base="base" if base is not None else None)


def assert_same(ours, theirs):
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype, k
        err = (ours[k].float() - theirs[k].float()).abs().max().item()
        assert err <= TOL, (k, err)


class SameDraws:
    """Stands in for ``torch.bernoulli`` inside mergekit: draws U from our seeded generator, in our order (tensor
    names in state-dict order, then models), and returns [U < p] (optionally divided by p, difference 6). Records p."""

    def __init__(self, seed, divide_by_p=False):
        self.g = torch.Generator().manual_seed(seed)
        self.divide_by_p = divide_by_p
        self.probs: list[torch.Tensor] = []

    def __call__(self, p, *args, **kwargs):
        assert not args and not kwargs
        self.probs.append(p.clone())
        keep = (torch.rand(p.shape, generator=self.g) < p).to(p.dtype)
        return keep / p if self.divide_by_p else keep


# ------------------------------------------------------------------------------------------- where definitions agree
def test_linear_matches():
    _, fts = rand_sds()
    assert_same(A.linear_merge(fts, W), mk("linear", None, fts, weight=W))


@pytest.mark.parametrize("lam", [1.0, 0.4])
def test_task_arithmetic_matches(lam):
    base, fts = rand_sds()
    assert_same(A.task_arithmetic(base, fts, W, lam=lam), mk("task_arithmetic", base, fts, weight=W, **{"lambda": lam}))


@pytest.mark.parametrize("density", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("lam", [1.0, 0.6])
def test_ties_matches(density, lam):
    base, fts = rand_sds(seed=1)
    ours = A.ties_merge(base, fts, density=density, lam=lam, weights=W)
    assert_same(ours, mk("ties", base, fts, weight=W, density=density, **{"lambda": lam}))


def test_magnitude_trim_matches_when_density_times_n_is_integer():
    t = torch.randn(8, 25, generator=torch.Generator().manual_seed(2))
    for d in (0.1, 0.2, 0.5, 0.07):  # 0.07·200 = 14.000000000000002 in floating point: still 14 entries
        assert torch.allclose(A.magnitude_trim(t, d), mks.magnitude(t, d), atol=0, rtol=0), d


@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_dare_matches_with_same_masks(monkeypatch, lam):
    base, fts = rand_sds(seed=3)
    d, seed = 0.3, 11
    rec = SameDraws(seed)
    monkeypatch.setattr(torch, "bernoulli", rec)
    theirs = mk("dare_linear", base, fts, weight=W, density=d, rescale=False, **{"lambda": lam / d})
    assert len(rec.probs) == 2 * len(fts)  # one mask per (tensor, model): the coupling was used
    assert_same(A.dare_merge(base, fts, density=d, lam=lam, weights=W, seed=seed), theirs)


def test_dare_ties_matches_with_same_masks(monkeypatch):
    base, fts = rand_sds(seed=4)
    d, lam, seed = 0.5, 0.8, 5
    rec = SameDraws(seed)
    monkeypatch.setattr(torch, "bernoulli", rec)
    theirs = mk("dare_ties", base, fts, weight=W, density=d, rescale=False, normalize=True, **{"lambda": lam / d})
    assert len(rec.probs) == 2 * len(fts)
    assert_same(A.dare_merge(base, fts, density=d, lam=lam, weights=W, seed=seed, sign_election=True), theirs)


def della_eps(eps_mergekit: float, n: int) -> float:
    return 2 * eps_mergekit * n / (n - 1)


def test_della_keep_probabilities_match_after_translating_epsilon(monkeypatch):
    t = torch.randn(5, 10, generator=torch.Generator().manual_seed(6))
    d, eps = 0.4, 0.15
    rec = SameDraws(0)
    monkeypatch.setattr(torch, "bernoulli", rec)
    mks.della_magprune(t, d, eps)
    (q_mk,) = rec.probs
    q = A.magprune_probs(t, d, della_eps(eps, t.shape[-1]))
    assert torch.allclose(q, q_mk, atol=TOL, rtol=0)
    assert q_mk.min().item() == pytest.approx(d - eps) and q_mk.max().item() == pytest.approx(d + eps)


@pytest.mark.parametrize("lam", [1.0, 0.7])
def test_della_matches_with_same_masks_and_per_entry_rescale(monkeypatch, lam):
    base, fts = rand_sds(seed=7)  # every row (w: 6×10, b: 1×10) has n = 10 entries -> one ε translation
    d, eps, seed = 0.5, 0.2, 3
    rec = SameDraws(seed, divide_by_p=True)
    monkeypatch.setattr(torch, "bernoulli", rec)
    theirs = mk("della", base, fts, weight=W, density=d, epsilon=eps, rescale=False, normalize=True,
                **{"lambda": lam})
    ours = A.della_merge(base, fts, density=d, epsilon=della_eps(eps, 10), lam=lam, weights=W, seed=seed)
    assert len(rec.probs) == 2 * len(fts)
    assert_same(ours, theirs)


# ------------------------------------------------------------------------- documented differences (pinned here)
def test_difference_1_trim_count_rounds_up_here_down_in_mergekit():
    t = torch.randn(30, generator=torch.Generator().manual_seed(8))
    assert (A.magnitude_trim(t, 0.25) != 0).sum().item() == 8  # ⌈7.5⌉
    assert (mks.magnitude(t, 0.25) != 0).sum().item() == 7  # ⌊7.5⌋


def test_difference_2_zero_sum_sign_election():
    base = {"w": torch.zeros(2)}
    fts = [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([-1.0, 1.0])}]
    ours = A.ties_merge(base, fts, density=1.0)["w"]
    theirs = mk("ties", base, fts, weight=1.0, density=1.0)["w"]
    assert ours.tolist() == [0.0, 1.5] and theirs.tolist() == [1.0, 1.5]


def test_difference_3_dare_rescale_l1_norm_vs_one_over_density(monkeypatch):
    t = torch.randn(6, 10, generator=torch.Generator().manual_seed(9))
    d = 0.3
    monkeypatch.setattr(torch, "bernoulli", SameDraws(1))
    theirs = mks.bernoulli(t, d, rescale_norm=mks.RescaleNorm.l1)
    ours = A.dare_drop(t, d, torch.Generator().manual_seed(1))
    mask = ours != 0
    assert torch.equal(mask, theirs != 0)  # same draws -> same mask
    assert torch.allclose(theirs, t * mask * (t.abs().sum() / (t * mask).abs().sum()), atol=TOL)
    assert torch.allclose(ours, t * mask / d, atol=TOL)
    assert not torch.allclose(ours, theirs, atol=1e-3)


def test_difference_4_dare_ties_default_sums_agreeing_entries(monkeypatch):
    base, fts = rand_sds(seed=10)
    monkeypatch.setattr(torch, "bernoulli", SameDraws(2))
    summed = mk("dare_ties", base, fts, weight=1.0, density=1.0, rescale=False)  # mergekit default normalize=false
    ours = A.dare_merge(base, fts, density=1.0, sign_election=True)
    tv = A.task_vectors(base, fts)
    ref = base["w"] + sum(t["w"] * (torch.sign(t["w"]) == torch.sign(sum(u["w"] for u in tv))) for t in tv)
    assert torch.allclose(summed["w"], ref, atol=TOL) and not torch.allclose(ours["w"], ref, atol=1e-3)
