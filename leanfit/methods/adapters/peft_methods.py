"""peft's tuners exposed by name through leanfit's registry (wrapped, not rewritten).

Each entry maps a lower-case leanfit name to a peft config class (peft 0.21.2): lora, dora, vera, ia3, loha, lokr,
oft, boft, vblora, ln_tuning, hra, fourierft. The task head stays trainable through peft's ``modules_to_save``;
default target modules come from the task (``task.target_modules``), except ln_tuning (LayerNorm modules) and
ia3 (which also scales the feed-forward input of the targets named in ``options["feedforward_modules"]``).
Extra peft-specific arguments go through ``options`` and are validated by peft itself.

``param_formula(model, task)`` gives each method's trainable-parameter count from its paper, computed from layer
shapes of the un-adapted model (d = out_features, k = in_features), for the contract test; ``None`` where peft's
parametrisation has no short closed form (lokr: peft picks the Kronecker factor shapes heuristically).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ...engine.errors import ConfigError, check
from ...engine.registry import register
from ..base import Adapter
from ._layers import head_param_count, match_modules


def _targets(cfg_targets: tuple[str, ...], task) -> list[str]:
    t = list(cfg_targets or task.target_modules)
    if not t:
        raise ConfigError(f"task {task.name} names no default target modules. Fix: set target_modules in the adapter.")
    return t


def _linears(model: nn.Module, targets, task) -> list[nn.Linear]:
    return [m for _, m in match_modules(model, targets, task.head, nn.Linear)]


RANKED = ("lora", "dora", "loha")  # methods whose r is the rank of a d×k update (so r ≤ min(d, k) is the useful range)


def check_rank(method: str, r: int | None, model: nn.Module, targets, task) -> None:
    """A rank above a targeted layer's min(in, out) adds parameters but no expressiveness (rank(BA) ≤ min(d, k)),
    and soon more parameters than full fine-tuning (LoRA r=512 on a 26k-parameter MLP trained 449k): an error
    with the numbers, before anything trains."""
    layers = match_modules(model, targets, task.head, nn.Linear)
    over = [(n, m) for n, m in layers if r is not None and r > min(m.in_features, m.out_features)]
    if not over:
        return
    cap = min(min(m.in_features, m.out_features) for _, m in layers)
    shown = ", ".join(f"{n} ({m.in_features}→{m.out_features})" for n, m in over[:4])
    adapter = sum(r * (m.in_features + m.out_features) for _, m in layers)
    full = sum(m.in_features * m.out_features for _, m in layers)
    raise ConfigError(f"adapters.{method}: r must be ≤ min(in, out) of every targeted layer (a larger rank adds "
                      f"parameters, not expressiveness), but got r={r} with {len(over)} narrower layer(s): {shown}. "
                      f"Here r={r} trains {adapter:,} adapter parameters vs {full:,} for those layers in full. "
                      f"Fix: use r ≤ {cap}, or adapter: full.")


# ---------------------------------------------------------------------------------------------------------------- LoRA
@dataclass(frozen=True)
class LoraConfig:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()
    use_dora: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "an integer ≥ 1")
        check(self.alpha > 0, "alpha", self.alpha, "> 0")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


@register("adapters", "lora", LoraConfig, "peft LoRA: W + (alpha/r)·B·A, B=0 at init",
          paper="LoRA: Low-Rank Adaptation of Large Language Models (arXiv 2106.09685)", via="peft")
class Lora(Adapter):
    """ΔW = (α/r)·B·A with A∈R^{r×k} random, B∈R^{d×r} zero at init (Hu et al. 2021, eq. 3). Wraps peft."""

    mergeable = True
    identity_at_init = True

    def apply(self, model: nn.Module, task) -> nn.Module:
        import peft

        c = self.config
        check_rank("dora" if c.use_dora else "lora", c.r, model, _targets(c.target_modules, task), task)
        cfg = peft.LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout,
                              target_modules=_targets(c.target_modules, task), modules_to_save=list(task.head),
                              use_dora=c.use_dora)
        return peft.get_peft_model(model, cfg)

    def merge(self, model: nn.Module) -> nn.Module:
        return model.merge_and_unload()

    def param_formula(self, model: nn.Module, task) -> int:
        ls = _linears(model, _targets(self.config.target_modules, task), task)
        extra = sum(m.out_features for m in ls) if self.config.use_dora else 0  # DoRA: magnitude vector m ∈ R^d
        return sum(self.config.r * (m.in_features + m.out_features) for m in ls) + extra + head_param_count(model, task)


# ------------------------------------------------------------------------------------------ the other peft tuners
@dataclass(frozen=True)
class PeftSpec:
    peft_cls: str                      # class name in peft
    rank_field: str | None             # peft's name for the rank-like size, set from config.r
    default_r: int | None
    paper: str
    summary: str
    fixed: dict = field(default_factory=dict)   # peft kwargs this entry always sets
    mergeable: bool = True
    identity_at_init: bool = True
    formula: Callable[[Any, list[nn.Module], nn.Module], int] | None = None  # (config, target modules, model)


def _ln_count(model: nn.Module, cfg, ms) -> int:
    return sum(p.numel() for m in ms for p in m.parameters())


def _ia3(cfg, ms, model) -> int:
    ff = set(cfg.options.get("feedforward_modules", ()))
    n = 0
    for name, m in ms:
        is_ff = any(name == f or name.endswith("." + f) for f in ff)
        n += m.in_features if is_ff else m.out_features  # l ∈ R^k scales FF inputs, R^d scales outputs (eq. 1)
    return n


def _vblora(cfg, ms, model) -> int:
    n_vec, L = cfg.options.get("num_vectors", 256), cfg.options.get("vector_length", 256)
    # shared bank B ∈ R^{h×b} + per-layer logits over the bank for each sub-vector of A (r·k/b) and B (d·r/b)
    return n_vec * L + sum(cfg.r * (m.in_features + m.out_features) // L * n_vec for _, m in ms)


SPECS: dict[str, PeftSpec] = {
    "dora": PeftSpec("LoraConfig", "r", 8, "DoRA: Weight-Decomposed Low-Rank Adaptation (arXiv 2402.09353)",
                     "peft DoRA: magnitude m·(W+BA)/‖W+BA‖_c", {"use_dora": True, "lora_alpha": 16},
                     formula=lambda c, ms, _: sum(c.r * (m.in_features + m.out_features) + m.out_features for _, m in ms)),
    "vera": PeftSpec("VeraConfig", "r", 256, "VeRA: Vector-based Random Matrix Adaptation (arXiv 2310.11454)",
                     "peft VeRA: Λ_b·B·Λ_d·A with frozen shared random A,B",
                     formula=lambda c, ms, _: sum(c.r + m.out_features for _, m in ms)),
    "ia3": PeftSpec("IA3Config", None, None, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than "
                    "In-Context Learning (arXiv 2205.05638)", "peft (IA)^3: learned rescaling vectors l⊙h",
                    {"feedforward_modules": []}, formula=_ia3),
    "loha": PeftSpec("LoHaConfig", "r", 8, "FedPara: Low-Rank Hadamard Product (arXiv 2108.06098)",
                     "peft LoHa: ΔW=(B1A1)⊙(B2A2)", {"alpha": 8},
                     formula=lambda c, ms, _: sum(2 * c.r * (m.in_features + m.out_features) for _, m in ms)),
    "lokr": PeftSpec("LoKrConfig", "r", 8, "Navigating Text-To-Image Customization: LyCORIS (arXiv 2309.14859)",
                     "peft LoKr: ΔW = C ⊗ (BA)", {"alpha": 8}),
    "oft": PeftSpec("OFTConfig", None, None, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning "
                    "(arXiv 2306.07280)", "peft OFT: W·R, R block-diagonal orthogonal (Cayley)",
                    {"r": 0, "oft_block_size": 32}, formula=lambda c, ms, _: sum(
                        # k/b orthogonal blocks, each a b×b skew-symmetric matrix: b(b−1)/2 free entries
                        m.in_features // c.options["oft_block_size"] * c.options["oft_block_size"]
                        * (c.options["oft_block_size"] - 1) // 2 for _, m in ms)),
    "boft": PeftSpec("BOFTConfig", None, None, "Parameter-Efficient Orthogonal Finetuning via Butterfly "
                     "Factorization (arXiv 2311.06243)", "peft BOFT: butterfly-factorised orthogonal R",
                     {"boft_block_size": 4, "boft_n_butterfly_factor": 1}, formula=lambda c, ms, _: sum(
                         # m butterfly factors of k/b blocks b×b (peft stores full blocks) + output scale s ∈ R^d
                         c.options["boft_n_butterfly_factor"] * (m.in_features // c.options["boft_block_size"])
                         * c.options["boft_block_size"] ** 2 + m.out_features for _, m in ms)),
    "vblora": PeftSpec("VBLoRAConfig", "r", 4, "VB-LoRA: Extreme Parameter Efficient Fine-Tuning with Vector Banks "
                       "(arXiv 2405.15179)", "peft VB-LoRA: LoRA factors assembled top-k from a shared vector bank",
                       {"num_vectors": 64, "vector_length": 8, "topk": 2}, identity_at_init=False, formula=_vblora),
    "ln_tuning": PeftSpec("LNTuningConfig", None, None, "Tuning LayerNorm in Attention (arXiv 2312.11420)",
                          "peft LN-tuning: only LayerNorm parameters train", {}, mergeable=True),
    "hra": PeftSpec("HRAConfig", "r", 8, "Bridging The Gap between Low-rank and Orthogonal Adaptation via "
                    "Householder Reflection Adaptation (arXiv 2405.17484)", "peft HRA: W·Π(I−2u_i u_iᵀ), r reflections",
                    formula=lambda c, ms, _: sum(c.r * m.in_features for _, m in ms)),
    "fourierft": PeftSpec("FourierFTConfig", "n_frequency", 1000, "Parameter-Efficient Fine-Tuning with Discrete "
                          "Fourier Transform (arXiv 2405.03003)", "peft FourierFT: ΔW = IDFT of n learned spectral "
                          "coefficients", identity_at_init=False,
                          formula=lambda c, ms, _: c.r * len(ms)),
}


@dataclass(frozen=True)
class PeftTunerConfig:
    """Shared config of the wrapped peft tuners: ``r`` is the method's size (rank, n_frequency, ...), ``options``
    extra peft keyword arguments (peft validates them)."""

    r: int | None = None
    target_modules: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.r is None or (isinstance(self.r, int) and self.r >= 1), "r", self.r, "None or an integer ≥ 1")
        check(isinstance(self.options, dict), "options", self.options, "a mapping of peft keyword arguments")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


class PeftTuner(Adapter):
    """Thin wrapper: build the peft config from ``SPECS[name]`` + our config, then ``peft.get_peft_model``."""

    name = ""

    @property
    def spec(self) -> PeftSpec:
        return SPECS[self.name]

    @property
    def mergeable(self) -> bool:  # type: ignore[override]
        return self.spec.mergeable

    @property
    def identity_at_init(self) -> bool:
        return self.spec.identity_at_init

    def _r(self) -> int | None:
        return self.config.r if self.config.r is not None else self.spec.default_r

    def _targets(self, task) -> list[str]:
        if self.name == "ln_tuning":
            return list(self.config.target_modules or ("LayerNorm",))
        return _targets(self.config.target_modules, task)

    def peft_config(self, task):
        import peft

        kw: dict[str, Any] = {**self.spec.fixed, **self.config.options}
        if self.spec.rank_field and self._r() is not None:
            kw[self.spec.rank_field] = self._r()
        kw["target_modules"] = self._targets(task)
        if self.name == "ia3":
            kw["feedforward_modules"] = list(kw.get("feedforward_modules") or [])
        try:
            return getattr(peft, self.spec.peft_cls)(modules_to_save=list(task.head), **kw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"adapters.{self.name}: peft rejected the options {kw}: {e}. Fix: see the peft "
                              f"{self.spec.peft_cls} documentation.") from None

    def apply(self, model: nn.Module, task) -> nn.Module:
        import peft

        if self.name in RANKED:
            check_rank(self.name, self._r(), model, self._targets(task), task)
        cfg = self.peft_config(task)
        try:
            return peft.get_peft_model(model, cfg)
        except ValueError as e:
            raise ConfigError(f"adapters.{self.name}: cannot attach to task {task.name}: {e}. Fix: set "
                              f"target_modules to modules this method supports.") from None

    def merge(self, model: nn.Module) -> nn.Module:
        return model.merge_and_unload()

    def param_formula(self, model: nn.Module, task) -> int | None:
        if self.name == "ln_tuning":
            ms = match_modules(model, self._targets(task), task.head, nn.LayerNorm)
            return sum(p.numel() for _, m in ms for p in m.parameters()) + head_param_count(model, task)
        if self.spec.formula is None:
            return None
        ms = match_modules(model, self._targets(task), task.head, nn.Linear)
        cfg = dataclasses.replace(self.config, r=self._r(), options={**self.spec.fixed, **self.config.options})
        return self.spec.formula(cfg, ms, model) + head_param_count(model, task)


def _register_all() -> None:
    for name, spec in SPECS.items():
        cls = type(f"Peft_{name}", (PeftTuner,), {"name": name, "__doc__": f"{spec.summary}. Wraps peft."})
        register("adapters", name, PeftTunerConfig, spec.summary, paper=spec.paper, via="peft")(cls)


_register_all()
