"""Permutation alignment by weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin: Merging Models modulo
Permutation Symmetries", 2209.04836, Sec. 3.2, Alg. 1) and the loss/accuracy barrier along the linear path.

Hidden units of a layer can be permuted (rows of its weight and bias, matching input columns of the next layer)
without changing the function. Weight matching picks, for each hidden group l, the permutation P_l maximising
Σ_layers ⟨W_A, P_l W_B P_{l−1}ᵀ⟩_F by coordinate descent: each P_l is a linear assignment problem (solved with
``scipy.optimize.linear_sum_assignment``) with the other permutations held fixed.

Supported (inferred from state-dict names): the built-in MLP (fc1, fc2, …, head; ``share_layers=False``), CNN1D
(conv1, conv2, …, fc, head; the conv→fc flatten permutes blocks of ``fc.in_features / channels`` columns), and
BERT-style transformers: per layer the FFN units (``intermediate.dense`` rows / ``output.dense`` columns) and the
attention heads (query/key/value row blocks / ``attention.output.dense`` column blocks); the residual stream is not
permuted. The permutation code and the barrier are written here (no maintained library for plain state dicts).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ..base import Merger
from .arithmetic import linear_merge

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Group:
    """One permutable set of ``size`` units: rows of ``out`` weights (+ biases), column blocks of ``inp`` weights.
    ``block``: consecutive input columns per unit (flatten of a conv feature map; head_dim for attention)."""
    name: str
    size: int
    out: tuple[str, ...]  # module prefixes whose output rows (in blocks of ``out_block``) are the units
    inp: tuple[str, ...]  # module prefixes whose input columns (in blocks of ``block``) are the units
    block: int = 1
    out_block: int = 1


def _layers(sd: StateDict, stem: str) -> list[str]:
    names = sorted({m.group(1) for k in sd if (m := re.fullmatch(rf"({stem}(\d+))\.weight", k))},
                   key=lambda s: int(s[len(stem):]))
    return names


def infer_groups(sd: StateDict) -> list[Group]:
    """The permutation symmetries of a built-in model, read from its state-dict names and shapes."""
    if "head.weight" in sd and "conv1.weight" in sd:  # CNN1D
        convs = _layers(sd, "conv")
        groups = [Group(c, sd[f"{c}.weight"].shape[0], (c,), (n,)) for c, n in zip(convs[:-1], convs[1:])]
        ch = sd[f"{convs[-1]}.weight"].shape[0]
        groups.append(Group(convs[-1], ch, (convs[-1],), ("fc",), block=sd["fc.weight"].shape[1] // ch))
        groups.append(Group("fc", sd["fc.weight"].shape[0], ("fc",), ("head",)))
        return groups
    if "head.weight" in sd and "fc1.weight" in sd:  # MLP
        fcs = _layers(sd, "fc") + ["head"]
        return [Group(a, sd[f"{a}.weight"].shape[0], (a,), (b,)) for a, b in zip(fcs[:-1], fcs[1:])]
    groups = []
    for k in sorted(sd):
        if (m := re.fullmatch(r"(.*)\.intermediate\.dense\.weight", k)):
            p = m.group(1)
            groups.append(Group(f"{p}.ffn", sd[k].shape[0], (f"{p}.intermediate.dense",), (f"{p}.output.dense",)))
        if (m := re.fullmatch(r"(.*)\.attention\.self\.query\.weight", k)):
            p = m.group(1)
            hidden = sd[k].shape[0]
            n_heads = _heads_hint.get(hidden)
            if n_heads is None:
                continue
            hd = hidden // n_heads
            groups.append(Group(f"{p}.heads", n_heads, tuple(f"{p}.attention.self.{q}" for q in ("query", "key", "value")),
                                (f"{p}.attention.output.dense",), block=hd, out_block=hd))
    if not groups:
        raise ConfigError(f"weight matching must know the model's permutation symmetries, but the state dict (keys "
                          f"like {sorted(sd)[:3]}) is not a built-in MLP (fc1…head), CNN1D (conv1…fc, head) or "
                          f"BERT-style encoder. Fix: align one of those, or pass groups=[Group(...)] explicitly.")
    return groups


_heads_hint: dict[int, int] = {}


def set_num_heads(hidden: int, n_heads: int) -> None:
    """Tell ``infer_groups`` the head count of BERT-style models of this hidden size (not in the state dict)."""
    _heads_hint[hidden] = n_heads


def _rows(w: torch.Tensor, blk: int) -> torch.Tensor:  # [units*blk, ...] -> [units, blk*...]
    return w.reshape(w.shape[0] // blk, -1)


def _cols(w: torch.Tensor, blk: int, units: int) -> torch.Tensor:  # [out, units*blk, ...] -> [units, out*blk*...]
    x = w.reshape(w.shape[0], units, blk, *w.shape[2:])
    return x.transpose(0, 1).reshape(units, -1)


def permute(sd: StateDict, groups: Sequence[Group], perms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply unit permutations: new unit i of group g is old unit perms[g][i]. The function is unchanged."""
    out = {k: v.clone() for k, v in sd.items()}
    for g in groups:
        p = perms.get(g.name)
        if p is None:
            continue
        for m in g.out:
            for suf in ("weight", "bias"):
                k = f"{m}.{suf}"
                if k in out:
                    t = out[k]
                    out[k] = t.reshape(g.size, g.out_block, *t.shape[1:])[p].reshape(t.shape)
        for m in g.inp:
            t = out[f"{m}.weight"]
            x = t.reshape(t.shape[0], g.size, g.block, *t.shape[2:])[:, p]
            out[f"{m}.weight"] = x.reshape(t.shape)
    return out


def weight_matching(sd_a: StateDict, sd_b: StateDict, groups: Sequence[Group] | None = None, max_iter: int = 100,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Git Re-Basin weight matching (2209.04836, Alg. 1): permutations of B's units that maximise the summed
    Frobenius inner product with A. Returns {group name: LongTensor perm}; apply with ``permute(sd_b, groups, perm)``."""
    from scipy.optimize import linear_sum_assignment

    groups = list(groups) if groups is not None else infer_groups(sd_a)
    perms = {g.name: torch.arange(g.size) for g in groups}
    rng = torch.Generator().manual_seed(seed)
    a = {k: v.double() for k, v in sd_a.items() if v.is_floating_point()}
    b0 = {k: v.double() for k, v in sd_b.items() if v.is_floating_point()}
    for _ in range(max_iter):
        changed = False
        for gi in torch.randperm(len(groups), generator=rng).tolist():
            g = groups[gi]
            others = {n: p for n, p in perms.items() if n != g.name}
            b = permute(b0, groups, others)  # B with every other group aligned; this group's units in B order
            cost = torch.zeros(g.size, g.size, dtype=torch.float64)
            for m in g.out:
                for suf in ("weight", "bias"):
                    k = f"{m}.{suf}"
                    if k in a:
                        cost += _rows(a[k], g.out_block) @ _rows(b[k], g.out_block).T
            for m in g.inp:
                k = f"{m}.weight"
                cost += _cols(a[k], g.block, g.size) @ _cols(b[k], g.block, g.size).T
            _, col = linear_sum_assignment(cost.numpy(), maximize=True)
            new = torch.as_tensor(col, dtype=torch.long)
            old_score = cost[torch.arange(g.size), perms[g.name]].sum()
            new_score = cost[torch.arange(g.size), new].sum()
            if new_score > old_score + 1e-12 * (1 + old_score.abs()):
                perms[g.name] = new
                changed = True
        if not changed:
            break
    return perms


def align(sd_a: StateDict, sd_b: StateDict, groups: Sequence[Group] | None = None, **kw) -> dict[str, torch.Tensor]:
    """B permuted into A's basin (same function as B)."""
    groups = list(groups) if groups is not None else infer_groups(sd_a)
    return permute(sd_b, groups, weight_matching(sd_a, sd_b, groups, **kw))


def interpolate(sd_a: StateDict, sd_b: StateDict, alpha: float) -> dict[str, torch.Tensor]:
    """θ(α) = (1 − α) θ_A + α θ_B (integer buffers from A)."""
    return {k: ((1 - alpha) * v.float() + alpha * sd_b[k].float()).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in sd_a.items()}


@torch.no_grad()
def evaluate_sd(model: torch.nn.Module, sd: StateDict, task, split: str = "validation", batch_size: int = 512
                ) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` loaded with ``sd`` on a task split."""
    model.load_state_dict(sd)
    r = task.evaluate(model, split, batch_size=batch_size).metrics
    return {"loss": r["eval_loss"], "accuracy": r["accuracy"]}


def interpolation_curve(model, task, sd_a, sd_b, n_points: int = 11, split: str = "test") -> dict[str, list[float]]:
    alphas = [i / (n_points - 1) for i in range(n_points)]
    rows = [evaluate_sd(model, interpolate(sd_a, sd_b, a), task, split) for a in alphas]
    return {"alpha": alphas, "loss": [r["loss"] for r in rows], "accuracy": [r["accuracy"] for r in rows]}


def barrier(curve: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Loss barrier max_α [L(θ(α)) − ((1−α) L(θ_A) + α L(θ_B))] (2209.04836, Eq. 1; Frankle et al. 1912.05671) and
    the accuracy barrier (same with accuracy drop); also the values at the midpoint α = 0.5 when on the grid."""
    al, lo, ac = curve["alpha"], curve["loss"], curve["accuracy"]
    lb = max(l - ((1 - a) * lo[0] + a * lo[-1]) for a, l in zip(al, lo))
    ab = max(((1 - a) * ac[0] + a * ac[-1]) - x for a, x in zip(al, ac))
    out = {"loss_barrier": lb, "accuracy_barrier": ab}
    if 0.5 in al:
        i = al.index(0.5)
        out["midpoint_loss_barrier"] = lo[i] - (lo[0] + lo[-1]) / 2
        out["midpoint_accuracy_barrier"] = (ac[0] + ac[-1]) / 2 - ac[i]
    return out


@dataclass
class RebasinConfig:
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self):
        check(isinstance(self.max_iter, int) and self.max_iter >= 1, "max_iter", self.max_iter, "an integer >= 1")
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")


@register("merge", "rebasin", RebasinConfig, "align every model to the first by weight matching, then average",
          paper="Git Re-Basin: Merging Models modulo Permutation Symmetries (2209.04836)", needs_base=False,
          aligns=True)
class Rebasin(Merger):
    def merge(self, base, finetuned):
        finetuned = list(finetuned)
        check(len(finetuned) >= 1, "finetuned", len(finetuned), "a list of at least one state dict")
        ref = finetuned[0]
        aligned = [ref] + [align(ref, sd, max_iter=self.config.max_iter, seed=self.config.seed) for sd in finetuned[1:]]
        return linear_merge(aligned)
