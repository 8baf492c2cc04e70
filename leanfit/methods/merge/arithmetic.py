"""Weight-space merging of fine-tuned models that share a base: linear averaging, task arithmetic, TIES, DARE,
DELLA and Fisher-weighted averaging.

All functions are pure: they take state dicts (name -> tensor) and return a new state dict; inputs are not changed.
Only floating-point tensors are merged; integer buffers (e.g. ``position_ids``) are copied from the first model.
Notation: θ_0 base, θ_t fine-tune t, τ_t = θ_t − θ_0 its task vector, λ the scaling coefficient.

Written here rather than wrapping mergekit (arcee-ai/mergekit): its package requires datasets, sentencepiece and a
transformers major version, too heavy a dependency for six formulas. tests/methods/test_merge_mergekit.py checks
these functions against mergekit's ``merge_state_dicts`` within 1e-6 where the definitions coincide (optional:
skipped without mergekit); the differences in definition are listed there and in docs/merge.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ..base import Merger

StateDict = Mapping[str, torch.Tensor]


# ---------------------------------------------------------------------------------------------------------- helpers
def _check_same_keys(sds: Sequence[StateDict], names: Sequence[str]) -> None:
    check(len(sds) >= 1, "finetuned", len(sds), "a list of at least one state dict", "Fix: pass the fine-tuned models.")
    ref = sds[0]
    for sd, nm in zip(sds[1:], names[1:]):
        if set(sd) != set(ref):
            extra, missing = sorted(set(sd) - set(ref))[:3], sorted(set(ref) - set(sd))[:3]
            raise ConfigError(f"{nm} must have the same tensor names as {names[0]}, but it has extra {extra} and lacks "
                              f"{missing}. Fix: merge checkpoints of the same architecture (drop task heads first).")
        for k, v in sd.items():
            if tuple(v.shape) != tuple(ref[k].shape):
                raise ConfigError(f"{nm}[{k!r}] must have shape {tuple(ref[k].shape)} like {names[0]}, but got "
                                  f"{tuple(v.shape)}. Fix: merge models of the same architecture and width.")


def _prepare(base: StateDict | None, finetuned: Sequence[StateDict], weights: Sequence[float] | None,
             need_base: bool) -> tuple[StateDict | None, list[StateDict], list[float]]:
    finetuned = list(finetuned)
    if need_base:
        check(base is not None, "base", base, "a state dict (the common pre-trained model)",
              "Fix: give the base checkpoint; task vectors are θ_t − θ_base.")
    sds = ([base] if base is not None else []) + finetuned
    _check_same_keys(sds, (["base"] if base is not None else []) + [f"finetuned[{i}]" for i in range(len(finetuned))])
    w = [1.0] * len(finetuned) if weights is None else [float(x) for x in weights]
    check(len(w) == len(finetuned), "weights", list(w), f"one weight per fine-tuned model ({len(finetuned)})")
    return base, finetuned, w


def _is_merged(t: torch.Tensor) -> bool:
    return t.is_floating_point()


def task_vectors(base: StateDict, finetuned: Sequence[StateDict]) -> list[dict[str, torch.Tensor]]:
    """τ_t = θ_t − θ_0 for every floating-point tensor (Ilharco et al. 2212.04089, Eq. 1)."""
    return [{k: ft[k].float() - base[k].float() for k in base if _is_merged(base[k])} for ft in finetuned]


def _assemble(ref: StateDict, merged: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (merged[k].to(v.dtype) if k in merged else v.clone()) for k, v in ref.items()}


# ---------------------------------------------------------------------------------------- pure merging functions
def linear_merge(finetuned: Sequence[StateDict], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted average θ = Σ_t w_t θ_t / Σ_t w_t ("model soups", Wortsman et al., 2203.05482, Eq. 1 uniform soup)."""
    _, finetuned, w = _prepare(None, finetuned, weights, need_base=False)
    check(abs(sum(w)) > 1e-12, "weights", w, "a list whose sum is non-zero")
    ref = finetuned[0]
    out = {k: sum(wi * sd[k].float() for wi, sd in zip(w, finetuned)) / sum(w) for k in ref if _is_merged(ref[k])}
    return _assemble(ref, out)


def task_arithmetic(base: StateDict, finetuned: Sequence[StateDict], weights: Sequence[float] | None = None,
                    lam: float = 1.0) -> dict[str, torch.Tensor]:
    """Task arithmetic (Ilharco et al., "Editing Models with Task Arithmetic", 2212.04089, Eq. 2 addition):
    θ = θ_0 + λ Σ_t w_t τ_t."""
    base, finetuned, w = _prepare(base, finetuned, weights, need_base=True)
    tv = task_vectors(base, finetuned)
    out = {k: base[k].float() + lam * sum(wi * t[k] for wi, t in zip(w, tv)) for k in tv[0]}
    return _assemble(base, out)


def magnitude_trim(t: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ⌈density·n⌉ largest-|τ| entries of one tensor, zero the rest (TIES step 1, "trim")."""
    if density >= 1.0:
        return t.clone()
    # round first: 0.07 * 100 is 7.000000000000001 in floating point, and its ceiling would keep one entry too many
    k = int(math.ceil(round(density * t.numel(), 9)))
    if k <= 0:
        return torch.zeros_like(t)
    flat = t.abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)  # exactly k entries kept, even with ties at the threshold
    mask[torch.topk(flat, k).indices] = True
    return t * mask.view_as(t)


def elect_and_merge(deltas: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """TIES steps 2–3 (Yadav et al. 2306.01708, Alg. 1): γ = sgn(Σ_t w_t τ̂_t) (elect sign by total mass), then the
    disjoint mean over the models whose entry is non-zero and agrees with γ:
    τ_m = Σ_t w_t τ̂_t·[sgn τ̂_t = γ] / Σ_t w_t·[sgn τ̂_t = γ] (0 where no model agrees)."""
    stacked = torch.stack([wi * d for wi, d in zip(weights, deltas)])  # [T, *shape]
    gamma = torch.sign(stacked.sum(0))
    agree = (torch.sign(stacked) == gamma) & (stacked != 0)
    wt = torch.tensor(list(weights), dtype=stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
    num = (stacked * agree).sum(0)
    den = (wt * agree).sum(0)
    return torch.where(den.abs() > 1e-12, num / torch.where(den.abs() > 1e-12, den, torch.ones_like(den)),
                       torch.zeros_like(num))


def ties_merge(base: StateDict, finetuned: Sequence[StateDict], density: float = 0.2, lam: float = 1.0,
               weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """TIES-Merging (Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", 2306.01708,
    Alg. 1): trim each τ_t to its top-``density`` magnitudes, elect the sign, disjoint-mean, θ = θ_0 + λ τ_m."""
    base, finetuned, w = _prepare(base, finetuned, weights, need_base=True)
    tv = task_vectors(base, finetuned)
    out = {k: base[k].float() + lam * elect_and_merge([magnitude_trim(t[k], density) for t in tv], w) for k in tv[0]}
    return _assemble(base, out)


def dare_drop(t: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE (Yu et al. 2311.03099, Eq. 2): m ~ Bernoulli(p) with drop rate p = 1 − density; τ̂ = (1 − m)⊙τ / (1 − p)."""
    if density >= 1.0:
        return t.clone()
    keep = torch.rand(t.shape, generator=generator) < density
    return t * keep / density


def dare_merge(base: StateDict, finetuned: Sequence[StateDict], density: float = 0.5, lam: float = 1.0,
               weights: Sequence[float] | None = None, seed: int = 0, sign_election: bool = False
               ) -> dict[str, torch.Tensor]:
    """DARE (Yu et al., "Language Models are Super Mario: Absorbing Abilities from Homologous Models as a Free
    Lunch", 2311.03099, Eq. 2–3): drop-and-rescale each τ_t, then task arithmetic θ = θ_0 + λ Σ_t w_t τ̂_t
    (``sign_election=True``: TIES sign election + disjoint mean instead, "DARE-TIES"). Seeded: same seed, same mask."""
    base, finetuned, w = _prepare(base, finetuned, weights, need_base=True)
    tv = task_vectors(base, finetuned)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in tv[0]:  # fixed key order -> deterministic masks
        d = [dare_drop(t[k], density, g) for t in tv]
        fused = elect_and_merge(d, w) if sign_election else sum(wi * di for wi, di in zip(w, d))
        out[k] = base[k].float() + lam * fused
    return _assemble(base, out)


def magprune_probs(t: torch.Tensor, density: float, epsilon: float) -> torch.Tensor:
    """DELLA MAGPRUNE keep probabilities (Deep et al. 2406.11617, Sec. 3.1): rank the n entries of a row by |τ|
    (r = 0 smallest); drop probability p_i = p_min + ε·r_i/n with p_min chosen so the mean drop rate is p = 1 − density
    (i.e. p_i spans [p − ε/2, p + ε/2), larger magnitudes dropped less). Returns keep probability 1 − p_i, clamped."""
    p = 1.0 - density
    flat = t.reshape(-1, t.shape[-1]) if t.dim() > 1 else t.reshape(1, -1)  # rows: ranks are taken per output row
    n = flat.shape[-1]
    ranks = flat.abs().argsort(-1).argsort(-1).float()  # 0 = smallest magnitude
    # largest magnitude -> rank n-1 -> lowest drop probability
    drop = (p + epsilon / 2) - epsilon * (ranks + 0.5) / n
    return (1.0 - drop).clamp(1e-6, 1.0).view_as(t)


def della_merge(base: StateDict, finetuned: Sequence[StateDict], density: float = 0.5, epsilon: float = 0.1,
                lam: float = 1.0, weights: Sequence[float] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """DELLA-Merging (Deep et al., "DELLA-Merging: Reducing Interference in Model Merging through Magnitude-Based
    Sampling", 2406.11617, Sec. 3): MAGPRUNE (keep entry i with probability q_i = 1 − p_i, rescale kept by 1/q_i),
    then TIES sign election and disjoint mean (Elect, Fuse), θ = θ_0 + λ τ_m."""
    base, finetuned, w = _prepare(base, finetuned, weights, need_base=True)
    tv = task_vectors(base, finetuned)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in tv[0]:
        d = []
        for t in tv:
            q = magprune_probs(t[k], density, epsilon)
            keep = torch.rand(t[k].shape, generator=g) < q
            d.append(t[k] * keep / q)
        out[k] = base[k].float() + lam * elect_and_merge(d, w)
    return _assemble(base, out)


def fisher_merge(finetuned: Sequence[StateDict], fishers: Sequence[StateDict], weights: Sequence[float] | None = None,
                 eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Fisher-weighted averaging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", 2111.09832,
    Eq. 3 with diagonal Fisher): θ = Σ_t w_t F_t ⊙ θ_t / Σ_t w_t F_t (elementwise; ε keeps the quotient finite)."""
    _, finetuned, w = _prepare(None, finetuned, weights, need_base=False)
    check(len(fishers) == len(finetuned), "fishers", len(fishers), f"one Fisher dict per model ({len(finetuned)})",
          "Fix: compute them with leanfit.methods.merge.arithmetic.diagonal_fisher(model, task).")
    ref = finetuned[0]
    out = {}
    for k in ref:
        if not _is_merged(ref[k]):
            continue
        fs = [f[k].float() + eps if k in f else torch.full_like(ref[k].float(), eps) for f in fishers]
        out[k] = sum(wi * fi * sd[k].float() for wi, fi, sd in zip(w, fs, finetuned)) / sum(wi * fi for wi, fi in zip(w, fs))
    return _assemble(ref, out)


def diagonal_fisher(model: "torch.nn.Module", task, n_samples: int = 256, batch_size: int = 1,
                    empirical: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Diagonal Fisher F = E_x E_{y~p_θ(y|x)} [(∂ log p_θ(y|x)/∂θ)²] on ``n_samples`` train rows (2111.09832, Eq. 2;
    ``empirical=True`` uses the true label instead of sampling y). Per-example gradients (batch_size=1) as the paper."""
    g = torch.Generator().manual_seed(seed)
    n = min(n_samples, task.n_train)
    idx = torch.randperm(task.n_train, generator=g)[:n]
    params = {k: p for k, p in model.named_parameters()}
    fisher = {k: torch.zeros_like(p) for k, p in params.items()}
    was = model.training
    model.eval()
    for i in range(0, n, batch_size):
        batch = task.batch("train", idx[i:i + batch_size])
        logp = torch.log_softmax(task.forward(model, batch).float(), -1)
        for j in range(logp.shape[0]):
            y = batch["labels"][j] if empirical else torch.multinomial(logp[j].exp().detach(), 1, generator=g)[0]
            grads = torch.autograd.grad(logp[j, y], list(params.values()), retain_graph=True, allow_unused=True)
            for (k, _), gr in zip(params.items(), grads):
                if gr is not None:
                    fisher[k] += gr.detach() ** 2
    model.train(was)
    return {k: v / n for k, v in fisher.items()}


# ------------------------------------------------------------------------------------------------ configs + classes
def _density(v: float, field_name: str = "density") -> None:
    check(isinstance(v, (int, float)) and 0.0 < v <= 1.0, field_name, v, "a fraction in (0, 1]",
          "Fix: e.g. 0.2 keeps the 20% largest changes.")


def _weights(v) -> None:
    check(v is None or (isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v)), "weights", v,
          "null or a list of numbers (one per fine-tuned model)")


@dataclass
class LinearConfig:
    weights: list[float] | None = None

    def __post_init__(self):
        _weights(self.weights)


@dataclass
class TaskArithmeticConfig:
    lam: float = 1.0
    weights: list[float] | None = None

    def __post_init__(self):
        check(isinstance(self.lam, (int, float)) and 0 < self.lam <= 10, "lam", self.lam, "a number in (0, 10]",
              "Fix: the paper tunes λ in [0.05, 1] on validation data.")
        _weights(self.weights)


@dataclass
class TiesConfig(TaskArithmeticConfig):
    density: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        _density(self.density)


@dataclass
class DareConfig(TaskArithmeticConfig):
    density: float = 0.5
    seed: int = 0
    sign_election: bool = False

    def __post_init__(self):
        super().__post_init__()
        _density(self.density)
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")


@dataclass
class DellaConfig(TaskArithmeticConfig):
    density: float = 0.5
    epsilon: float = 0.1
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        _density(self.density)
        check(isinstance(self.epsilon, (int, float)) and 0 <= self.epsilon / 2 <= min(self.density, 1 - self.density)
              + 1e-12, "epsilon", self.epsilon, f"in [0, 2·min(density, 1 − density)] = [0, "
              f"{2 * min(self.density, 1 - self.density):.3g}] so every keep probability stays in [0, 1]",
              "Fix: lower epsilon or move density towards 0.5.")
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")


@dataclass
class FisherConfig:
    weights: list[float] | None = None
    n_samples: int = 256
    empirical: bool = False
    eps: float = 1e-8

    def __post_init__(self):
        _weights(self.weights)
        check(isinstance(self.n_samples, int) and self.n_samples >= 1, "n_samples", self.n_samples, "an integer >= 1")
        check(isinstance(self.eps, (int, float)) and self.eps > 0, "eps", self.eps, "a positive number")


@register("merge", "linear", LinearConfig, "weighted average of the models' weights (model soup)",
          paper="Model soups (2203.05482)", needs_base=False)
class Linear(Merger):
    def merge(self, base, finetuned):
        return linear_merge(finetuned, self.config.weights)


@register("merge", "task_arithmetic", TaskArithmeticConfig, "base + λ·sum of task vectors",
          paper="Editing Models with Task Arithmetic (2212.04089)", needs_base=True)
class TaskArithmetic(Merger):
    def merge(self, base, finetuned):
        return task_arithmetic(base, finetuned, self.config.weights, self.config.lam)


@register("merge", "ties", TiesConfig, "trim small task-vector entries, elect sign, disjoint mean",
          paper="TIES-Merging: Resolving Interference When Merging Models (2306.01708)", needs_base=True)
class Ties(Merger):
    def merge(self, base, finetuned):
        c = self.config
        return ties_merge(base, finetuned, c.density, c.lam, c.weights)


@register("merge", "dare", DareConfig, "randomly drop task-vector entries, rescale by 1/density, add",
          paper="Language Models are Super Mario (2311.03099)", needs_base=True)
class Dare(Merger):
    def merge(self, base, finetuned):
        c = self.config
        return dare_merge(base, finetuned, c.density, c.lam, c.weights, c.seed, c.sign_election)


@register("merge", "della", DellaConfig, "magnitude-ranked random drop (MAGPRUNE), rescale, elect sign, fuse",
          paper="DELLA-Merging: Reducing Interference in Model Merging through Magnitude-Based Sampling (2406.11617)",
          needs_base=True)
class Della(Merger):
    def merge(self, base, finetuned):
        c = self.config
        return della_merge(base, finetuned, c.density, c.epsilon, c.lam, c.weights, c.seed)


@register("merge", "fisher", FisherConfig, "average weighted by each model's diagonal Fisher information",
          paper="Merging Models with Fisher-Weighted Averaging (2111.09832)", needs_base=False, inputs=("fisher",))
class Fisher(Merger):
    def merge(self, base, finetuned, fisher: Sequence[StateDict] | None = None):
        if fisher is None:
            raise ConfigError("fisher merging needs one diagonal Fisher per model, but got fisher=None. Fix: pass "
                              "fisher=[diagonal_fisher(model_t, task_t) ...] (the merge workflow computes them).")
        return fisher_merge(finetuned, fisher, self.config.weights, self.config.eps)
