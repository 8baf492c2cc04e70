"""PLeaS (Nasery, Hayase, Koh & Oh, "PLeaS -- Merging Models with Permutations and Least Squares", 2407.02447,
Sec. 3; reference code github.com/SewoongLab/PLeaS-Merging) for the built-in MLP (fc1, fc2, …, head).

Two steps, both on the activations of the two models on inputs x_1..x_n. The equation numbers (1)–(4) are this
module's: the paper's own numbering could not be checked here (only its abstract and reference code were read).

**(1) Partial permutation matching.** For every hidden layer l, Z_A^l, Z_B^l ∈ R^{n×d} are the post-ReLU features.
Units of B are matched to units of A by the linear assignment that maximises the summed Pearson correlation
(activation matching, Git Re-Basin 2209.04836 Sec. 3.1, solved per layer with ``linear_sum_assignment``)::

    π_l = argmax_π Σ_i corr(Z_A^l[:, i], Z_B^l[:, π(i)])                                                  (1)

Partial merging (the paper's size/compute knob): with ``ratio`` r ∈ [0, 1], the m_l = round(r·d) matched pairs with
the *lowest* correlation are kept apart, the other d − m_l pairs are merged. The merged layer has width
k_l = (d − m_l) + 2·m_l = d + m_l (r = 0: same size as A and B; r = 1: nothing merged, both models side by side,
2d). Its target features (the "permuted features of the original models") are, in this order of units::

    Ẑ^l = [ (1−α)·Z_A^l[:, M_A] + α·Z_B^l[:, M_B]  |  Z_A^l[:, S_A]  |  Z_B^l[:, S_B] ]                      (2)

(M: merged pairs, S: kept apart; α = ½ for two models; Ẑ^0 = x, the input). Pre-activations Ĥ^l are built the same
way from H^l = Z^{l−1} W^lᵀ + b^l of each model; the head's target is (1−α)·logits_A + α·logits_B.

**(2) Layer-wise least squares.** The merged weights of layer l solve, independently per layer (inputs are the
target features of the layer below, as the reference code does, so layers do not depend on each other)::

    [W^l b^l] = argmin_{[W b] ∈ 𝒲_l} Σ_{x} ‖ W Ẑ^{l−1}(x) + b − Ĥ^l(x) ‖²                                   (3)

𝒲_l: the weights from A-only input units to B-only output units and from B-only inputs to A-only outputs are zero
(the reference code's gradient masks), so each row block has its own normal equations, with X = [Ẑ^{l−1}_cols, 1]::

    [W b]_rows = Ĥ^l_rowsᵀ X (XᵀX)⁻¹                                                                      (4)

solved with ``torch.linalg.lstsq`` (gelsd: the minimum-norm solution when X is rank deficient, e.g. a unit kept
apart in both models with identical features). Consequences the tests pin: merging a model with itself, or with a
permuted copy of itself, returns its function; with r = 1 the merged hidden features are exactly [Z_A^l | Z_B^l π]
and the logits the ensemble average.

Deviations from the paper, on purpose: (a) Eq. 3 is solved in closed form (the reference code fits the same
objective with Adam on mini-batches; with enough steps both reach its minimiser); (b) only MLPs (the paper
merges ResNets/ViTs; the conv case needs the im2col form of Eq. 3 and is not written here); (c) the same r for every
layer (the reference code also takes one ratio per layer); (d) more than two models are merged by folding
(((A ⊕ B) ⊕ C) …) with α = 1/t for the t-th model, only with r = 0 (the paper merges two); (e) with no data given
(the registry's ``merge(base, finetuned)`` call) the inputs are n_samples standard-normal vectors and a warning
says so — the paper's data-free variant (PLeaS-free) uses real images from another data set instead.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ..base import Merger
from .rebasin import _layers

StateDict = Mapping[str, torch.Tensor]


def mlp_layers(sd: StateDict) -> list[str]:
    """The layer names of a built-in MLP state dict in forward order: fc1, fc2, …, head."""
    fcs = _layers(sd, "fc")
    if not fcs or "head.weight" not in sd or "conv1.weight" in sd or any(sd[f"{n}.weight"].dim() != 2 for n in fcs):
        raise ConfigError(f"pleas must get a built-in MLP state dict (fc1.weight, …, head.weight), but got keys like "
                          f"{sorted(sd)[:4]}. Fix: PLeaS is implemented for leanfit.tasks.tabular.MLP only; use "
                          f"rebasin for CNN1D or BERT-style models.")
    for n in fcs + ["head"]:
        check(f"{n}.bias" in sd, f"{n}.bias", None, "present (the MLP's Linear layers have biases)")
    return fcs + ["head"]


@torch.no_grad()
def mlp_features(sd: StateDict, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(pre-activation H^l, post-ReLU Z^l) per fc layer and (logits, logits) for the head, in float64.
    x: [n, d_in]. Same computation as ``MLP.forward`` with ``share_layers=False``."""
    h = x.double()
    out = []
    names = mlp_layers(sd)
    for i, n in enumerate(names):
        pre = h @ sd[f"{n}.weight"].double().T + sd[f"{n}.bias"].double()  # [n, d_out]
        h = pre.clamp_min(0) if i < len(names) - 1 else pre
        out.append((pre, h))
    return out


def correlation(za: torch.Tensor, zb: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation between every unit of A (rows) and of B (columns); za, zb: [n, d] -> [d, d].
    A constant (dead) unit correlates 0 with everything."""
    a = za - za.mean(0)
    b = zb - zb.mean(0)
    a = a / (a.norm(dim=0) + eps)
    b = b / (b.norm(dim=0) + eps)
    return a.T @ b


def partial_match(corr: torch.Tensor, ratio: float) -> dict[str, torch.Tensor]:
    """Eq. 1 + the partial split: B unit π(i) is matched to A unit i by linear assignment on ``corr`` [d, d]; the
    round(ratio·d) matched pairs with the lowest correlation are kept apart. Returns index tensors ``a_merged``,
    ``b_merged`` (pairs, aligned), ``a_sep``, ``b_sep`` (each sorted by A's unit index) and ``perm`` (π)."""
    from scipy.optimize import linear_sum_assignment

    d = corr.shape[0]
    _, col = linear_sum_assignment(corr.numpy(), maximize=True)
    perm = torch.as_tensor(col, dtype=torch.long)
    score = corr[torch.arange(d), perm]
    m = int(round(ratio * d))
    order = torch.argsort(score, stable=True)  # lowest correlation first
    sep = torch.zeros(d, dtype=torch.bool)
    sep[order[:m]] = True
    a_m, a_s = torch.nonzero(~sep).flatten(), torch.nonzero(sep).flatten()
    return {"a_merged": a_m, "b_merged": perm[a_m], "a_sep": a_s, "b_sep": perm[a_s], "perm": perm}


def combine(fa: torch.Tensor, fb: torch.Tensor, blk: Mapping[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """Eq. 2: [(1−α)·f_A[M_A] + α·f_B[M_B] | f_A[S_A] | f_B[S_B]] along the last dim; fa, fb: [n, d] -> [n, k]."""
    return torch.cat([(1 - alpha) * fa[:, blk["a_merged"]] + alpha * fb[:, blk["b_merged"]],
                      fa[:, blk["a_sep"]], fb[:, blk["b_sep"]]], dim=1)


def least_squares_layer(x: torch.Tensor, y: torch.Tensor, in_split: tuple[int, int, int] | None = None,
                        out_split: tuple[int, int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3–4: W [k_out, k_in], b [k_out] minimising ‖x Wᵀ + b − y‖² over the rows of x [n, k_in], y [n, k_out].

    ``in_split``/``out_split`` = (merged, A-only, B-only) unit counts; given both, A-only outputs may not read
    B-only inputs and vice versa (those weights are 0), so the three output blocks are solved separately."""
    n, k_in = x.shape
    xd, yd = x.double(), y.double()
    ones = torch.ones(n, 1, dtype=torch.float64)
    w = torch.zeros(y.shape[1], k_in, dtype=torch.float64)
    b = torch.zeros(y.shape[1], dtype=torch.float64)
    if in_split is None or out_split is None:
        blocks = [(torch.arange(y.shape[1]), torch.arange(k_in))]
    else:
        mi, ai, bi = in_split
        mo, ao, bo = out_split
        check(sum(in_split) == k_in and sum(out_split) == y.shape[1], "in_split/out_split", (in_split, out_split),
              f"unit counts summing to the widths ({k_in}, {y.shape[1]})")
        cols_all = torch.arange(k_in)
        cols_a = torch.cat([torch.arange(mi), torch.arange(mi, mi + ai)])
        cols_b = torch.cat([torch.arange(mi), torch.arange(mi + ai, k_in)])
        blocks = [(torch.arange(mo), cols_all), (torch.arange(mo, mo + ao), cols_a),
                  (torch.arange(mo + ao, mo + ao + bo), cols_b)]
    for rows, cols in blocks:
        if len(rows) == 0:
            continue
        xx = torch.cat([xd[:, cols], ones], dim=1)  # [n, |cols| + 1]
        sol = torch.linalg.lstsq(xx, yd[:, rows], driver="gelsd").solution  # [|cols| + 1, |rows|]
        w[rows.unsqueeze(1), cols.unsqueeze(0)] = sol[:-1].T
        b[rows] = sol[-1]
    return w, b


@torch.no_grad()
def pleas_merge(sd_a: StateDict, sd_b: StateDict, inputs: torch.Tensor, ratio: float = 0.0, alpha: float = 0.5,
                return_info: bool = False):
    """PLeaS merge of two MLP state dicts (Eq. 1–4) from their activations on ``inputs`` [n, d_in].

    Returns the merged state dict (hidden widths d + round(ratio·d); load it into ``MLP(d_in, width, C, depth)``),
    and with ``return_info=True`` also {"blocks": per hidden layer the ``partial_match`` index tensors, "widths"}."""
    check(isinstance(ratio, (int, float)) and 0.0 <= ratio <= 1.0, "ratio", ratio, "a fraction in [0, 1]")
    check(isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0, "alpha", alpha, "a weight in [0, 1]")
    names = mlp_layers(sd_a)
    check(mlp_layers(sd_b) == names and all(sd_a[f"{n}.weight"].shape == sd_b[f"{n}.weight"].shape for n in names),
          "sd_b", sorted(sd_b)[:4], "an MLP of the same depth and widths as sd_a")
    d_in = sd_a["fc1.weight"].shape[1]
    check(inputs.dim() == 2 and inputs.shape[1] == d_in, "inputs", tuple(inputs.shape), f"a [n, {d_in}] tensor")
    fa, fb = mlp_features(sd_a, inputs), mlp_features(sd_b, inputs)
    x_prev = inputs.double()  # Ẑ^{l-1}
    split_prev: tuple[int, int, int] | None = None
    out, blocks, widths = {}, [], []
    for i, n in enumerate(names):
        (ha, za), (hb, zb) = fa[i], fb[i]
        if n == "head":  # shared label space: the head's target is the (weighted) average of the logits
            y, split, z_next = (1 - alpha) * ha + alpha * hb, None, None
        else:
            blk = partial_match(correlation(za, zb), ratio)
            y, z_next = combine(ha, hb, blk, alpha), combine(za, zb, blk, alpha)
            split = (len(blk["a_merged"]), len(blk["a_sep"]), len(blk["b_sep"]))
            blocks.append(blk)
            widths.append(sum(split))
        w, b = least_squares_layer(x_prev, y, split_prev, split)
        dt = sd_a[f"{n}.weight"].dtype
        out[f"{n}.weight"], out[f"{n}.bias"] = w.to(dt), b.to(dt)
        x_prev, split_prev = z_next, split
    extra = {k: v.clone() for k, v in sd_a.items() if k not in out}  # e.g. integer buffers: from A
    merged = {**out, **extra}
    return (merged, {"blocks": blocks, "widths": widths}) if return_info else merged


# ------------------------------------------------------------------------------------------------ config + class
@dataclass
class PleasConfig:
    ratio: float = 0.0  # fraction of units kept apart (not merged): 0 same size, 1 both models side by side
    n_samples: int = 1024  # input rows whose activations drive Eq. 1 and Eq. 3
    seed: int = 0  # draws the rows (and the Gaussian inputs when no data is given)

    def __post_init__(self):
        check(isinstance(self.ratio, (int, float)) and not isinstance(self.ratio, bool) and 0.0 <= self.ratio <= 1.0,
              "ratio", self.ratio, "a fraction in [0, 1]",
              "Fix: 0 merges every unit (same size as the inputs), 1 merges none (twice as wide).")
        check(isinstance(self.n_samples, int) and not isinstance(self.n_samples, bool) and self.n_samples >= 2,
              "n_samples", self.n_samples, "an integer >= 2",
              "Fix: use more rows than the widest layer has units (+1) so Eq. 3 has a unique solution.")
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")


@register("merge", "pleas", PleasConfig, "partial activation matching, then layer-wise least squares (MLP)",
          paper="PLeaS -- Merging Models with Permutations and Least Squares (2407.02447)", needs_base=False,
          inputs=("inputs",))
class Pleas(Merger):
    def merge(self, base, finetuned: Sequence[StateDict], inputs: torch.Tensor | None = None):
        """Merge the models by PLeaS on ``inputs`` [n, d_in] (first ``n_samples`` rows of a seeded shuffle);
        without inputs, n_samples standard-normal rows (with a warning). ``base`` is not used."""
        c = self.config
        finetuned = list(finetuned)
        check(len(finetuned) >= 1, "finetuned", len(finetuned), "a list of at least one state dict")
        if len(finetuned) == 1:
            return {k: v.clone() for k, v in finetuned[0].items()}
        if len(finetuned) > 2 and c.ratio != 0:
            raise ConfigError(f"ratio must be 0 when merging more than two models, but got ratio={c.ratio} for "
                              f"{len(finetuned)} models. Fix: merge two models, or use ratio 0 (same width).")
        g = torch.Generator().manual_seed(c.seed)
        d_in = finetuned[0]["fc1.weight"].shape[1] if "fc1.weight" in finetuned[0] else None
        if inputs is None:
            mlp_layers(finetuned[0])
            warnings.warn(f"pleas: no inputs given; using {c.n_samples} standard-normal inputs (data-free). Pass "
                          f"inputs=<task rows> to merge on real activations.", stacklevel=2)
            inputs = torch.randn(c.n_samples, d_in, generator=g)
        else:
            inputs = inputs[torch.randperm(len(inputs), generator=g)[:c.n_samples]]
        merged = {k: v.clone() for k, v in finetuned[0].items()}
        for t, sd in enumerate(finetuned[1:], start=2):
            merged = pleas_merge(merged, sd, inputs, c.ratio, alpha=1.0 / t)
        return merged
