"""SGD and AdamW from torch, and every optimizer in pytorch-optimizer by its lower-case name (wrapped, not
re-written).

Parameter groups follow common practice: no weight decay on biases and normalisation weights (1-D tensors).
Optimizers that need special groups get them here:

- GaLore (arXiv 2403.03507) / Fira (arXiv 2410.01623): 2-D weights go in a group with ``rank``,
  ``update_proj_gap``, ``scale``, ``projection_type`` (low-rank gradient projection, Adam state r×n instead of m×n);
  other params get plain Adam. These four keys are added to the generated config.
- Muon family (Muon arXiv 2502.16982 and variants): 2-D+ hidden weights ``use_muon=True`` (Newton–Schulz
  orthogonalised momentum); biases, norms, embeddings and the classifier head use the built-in AdamW branch.
- Ranger21 needs the planned number of iterations: ``num_iterations`` defaults to 1000 here.

Library optimizers the Trainer cannot drive (they need a closure that re-evaluates the loss, Hessian-vector
products with ``create_graph=True``, the model object, or an extra package) stay listed but carry
``Capabilities.unsupported`` with the reason; building one raises a ConfigError that says so.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from ...engine.errors import check
from ...engine.registry import Capabilities, Entry, add, defer, register, signature_config
from ..base import OptimMethod


def param_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed (≥2-D weights) and not decayed (biases, norm weights)."""
    decay = [p for n, p in named_params if p.ndim >= 2]
    no_decay = [p for n, p in named_params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def fastest(cls: type, groups: list[dict[str, Any]], fused: bool | None, **kw: Any) -> torch.optim.Optimizer:
    """torch's fused implementation where this torch and device have it (one kernel over all parameters: on CPU
    15x faster than the per-tensor loop for AdamW on 4M parameters, same update within 3e-7), else the default
    foreach one. ``fused=False`` asks for the default; ``fused=True`` insists (an error if unavailable)."""
    if fused is False:
        return cls(groups, **kw)
    try:
        return cls(groups, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        if fused:
            raise
        return cls(groups, **kw)


def _check_fused(fused: Any) -> None:
    check(fused is None or isinstance(fused, bool), "fused", fused, "true, false or null (auto: fused where available)")


@dataclass(frozen=True)
class SGDConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    fused: bool | None = None  # None: torch's fused kernel where available

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")
        _check_fused(self.fused)


@register("optim", "sgd", SGDConfig, "torch SGD with (Nesterov) momentum")
class SGD(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        return fastest(torch.optim.SGD, param_groups(named_params, c.weight_decay), c.fused, lr=c.lr,
                       momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)


@dataclass(frozen=True)
class AdamWConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    fused: bool | None = None  # None: torch's fused kernel where available

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        check(self.eps > 0, "eps", self.eps, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")
        _check_fused(self.fused)


@register("optim", "adamw", AdamWConfig, "torch AdamW (decoupled weight decay)",
          paper="Decoupled Weight Decay Regularization (arXiv 1711.05101)")
class AdamW(OptimMethod):
    def build(self, named_params, task=None):
        c = self.config
        return fastest(torch.optim.AdamW, param_groups(named_params, c.weight_decay), c.fused, lr=c.lr, betas=c.betas,
                       eps=c.eps)


# ---- pytorch-optimizer, every optimizer by name ---------------------------------------------------------------
# name → why the Trainer (backward, then ``step()`` without a closure) cannot drive it
# optimizers whose step() takes the standard closure (zero grads, forward, backward, return loss): the Trainer
# passes one and meters every evaluation (train.py)
NEEDS_CLOSURE = ("lbfgs",)
# optimizers whose step(closure) only reads the loss value after the usual backward (AliG's Polyak step)
NEEDS_LOSS = ("alig",)
UNSUPPORTED: dict[str, str] = {
    "bsam": "fails in pytorch-optimizer 4.x on CPU (foreach update errors; KeyError 's' in its state after a step)",
    "adahessian": "needs Hessian-vector products (loss.backward(create_graph=True))",
    "sophiah": "needs Hessian-vector products (loss.backward(create_graph=True))",
    "adalomo": "fuses the update into backward and takes the model object, not parameters",
    "lomo": "fuses the update into backward and takes the model object, not parameters",
    "adammini": "takes the model object (per-block partitioning), not parameters",
    "magma": "wraps another optimizer object",
    "demo": "needs the optional package einops (DCT transform)",
    "lorarite": "expects LoRA factor pairs (lora_l_dim/lora_r_dim layout)",
    "spectralsphere": "accepts only 2-D parameters (no biases/norms)",
    "distributedmuon": "needs an initialised torch.distributed process group",
}
MUON_FAMILY = ("muon", "adamuon", "normuon", "adago", "muonclip", "distributedmuon")
LOWRANK_FAMILY = ("galore", "fira")
# extra config fields (name, default) for optimizers whose hyperparameters live in parameter groups
GROUP_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    n: (("rank", 8), ("update_proj_gap", 50), ("scale", 0.25), ("projection_type", "std")) for n in LOWRANK_FAMILY}
DEFAULT_OVERRIDES: dict[str, dict[str, Any]] = {"ranger21": {"num_iterations": 1000}}


def lowrank_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float, rank: int,
                   update_proj_gap: int, scale: float, projection_type: str) -> list[dict[str, Any]]:
    """GaLore/Fira groups: 2-D weights projected to ``rank`` (the library reads these group keys); rest plain."""
    mats = [p for n, p in named_params if p.ndim == 2]
    rest = [(n, p) for n, p in named_params if p.ndim != 2]
    groups = [{"params": mats, "weight_decay": weight_decay, "rank": rank, "update_proj_gap": update_proj_gap,
               "scale": scale, "projection_type": projection_type}] if mats else []
    return groups + param_groups(rest, weight_decay)


def muon_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float,
                task: Any = None) -> list[dict[str, Any]]:
    """Muon groups: hidden ≥2-D weights orthogonalised; 1-D params, embeddings and the task head use AdamW."""
    def is_muon(n: str, p: torch.nn.Parameter) -> bool:
        return p.ndim >= 2 and "embed" not in n.lower() and not (task is not None and task.is_head(n))

    mu = [p for n, p in named_params if is_muon(n, p)]
    other = [p for n, p in named_params if not is_muon(n, p)]
    groups = [{"params": mu, "use_muon": True, "weight_decay": weight_decay}] if mu else []
    return groups + ([{"params": other, "use_muon": False}] if other else [])


def _validate_lib(self) -> None:
    rank = getattr(self, "rank", None)
    if rank is not None:
        check(isinstance(rank, int) and rank >= 1, "rank", rank, "an integer ≥ 1")
    gap = getattr(self, "update_proj_gap", None)
    if gap is not None:
        check(isinstance(gap, int) and gap >= 1, "update_proj_gap", gap, "an integer ≥ 1")
    lr = getattr(self, "lr", None)
    if lr is not None:
        check(isinstance(lr, (int, float)) and lr > 0, "lr", lr, "> 0")
    wd = getattr(self, "weight_decay", None)
    if wd is not None:
        check(isinstance(wd, (int, float)) and wd >= 0, "weight_decay", wd, "≥ 0")


def lib_config_class(name: str, cls: type) -> type:
    """A config dataclass generated from the library optimizer's signature (its keywords and defaults), so
    recipes are validated against exactly what the optimizer accepts."""
    return signature_config(cls.__init__, f"{cls.__name__}Config", skip=("self", "params"), post_init=_validate_lib,
                            defaults=DEFAULT_OVERRIDES.get(name), extra=GROUP_FIELDS.get(name, ()),
                            missing=None)


class LibOptim(OptimMethod):
    """A pytorch-optimizer class built with leanfit's parameter groups (no decay on biases/norms)."""

    def __init__(self, config: Any, cls: type, name: str = ""):
        super().__init__(config)
        self.cls, self.name = cls, name

    def build(self, named_params, task=None):
        from ...engine.errors import ConfigError

        if self.name in UNSUPPORTED:
            raise ConfigError(f"optimizer {self.name!r} cannot run in the leanfit Trainer: it "
                              f"{UNSUPPORTED[self.name]}. Fix: choose another optimizer (see `leanfit list optim`).")
        kw = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()}
        has_wd = "weight_decay" in kw
        wd = kw.pop("weight_decay", 0.0) or 0.0
        if self.name in LOWRANK_FAMILY:
            extra = {k: kw.pop(k) for k, _ in GROUP_FIELDS[self.name]}
            groups = lowrank_groups(named_params, wd, **extra)
        elif self.name in MUON_FAMILY:
            groups = muon_groups(named_params, wd, task)
        elif has_wd:
            groups = param_groups(named_params, wd)
        else:
            groups = [{"params": [p for _, p in named_params]}]
        opt = self.cls(groups, **kw)
        if self.name in NEEDS_CLOSURE:
            opt.needs_closure = True
        if self.name in NEEDS_LOSS:
            opt.needs_loss = True
        return opt


def _register_library() -> None:
    try:
        from pytorch_optimizer import get_supported_optimizers, load_optimizer
    except ImportError:  # pragma: no cover
        return
    for name in get_supported_optimizers():
        name = name.lower()
        try:
            cls = load_optimizer(name)
            cfg = lib_config_class(name, cls)
        except Exception:  # noqa: BLE001 - a library entry that cannot load is skipped, not fatal
            continue
        doc = (inspect.getdoc(cls) or name).splitlines()[0]
        # fallback: torch's own (sgd, adamw) and our implementations of the same name win, in any import order
        caps = Capabilities(via="pytorch-optimizer", unsupported=UNSUPPORTED.get(name, ""), fallback=True)
        add(Entry("optim", name, lambda c, cls=cls, name=name: LibOptim(c, cls, name), cfg,
                  f"pytorch-optimizer: {doc}", capabilities=caps))


defer("optim", _register_library)  # imported only when a name is not one of ours
