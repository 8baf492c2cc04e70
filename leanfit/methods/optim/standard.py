"""SGD and AdamW from torch, and every optimizer in pytorch-optimizer by its lower-case name (wrapped).

Parameter groups follow common practice: no weight decay on biases and normalisation weights (1-D tensors).
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import check
from ...registry import Entry, add, register
from ..base import OptimMethod


def param_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed (≥2-D weights) and not decayed (biases, norm weights)."""
    decay = [p for n, p in named_params if p.ndim >= 2]
    no_decay = [p for n, p in named_params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@dataclass(frozen=True)
class SGDConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")


@register("optim", "sgd", SGDConfig, "torch SGD with (Nesterov) momentum")
class SGD(OptimMethod):
    def build(self, named_params):
        c = self.config
        return torch.optim.SGD(param_groups(named_params, c.weight_decay), lr=c.lr, momentum=c.momentum,
                               nesterov=c.nesterov and c.momentum > 0)


@dataclass(frozen=True)
class AdamWConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        check(self.eps > 0, "eps", self.eps, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")


@register("optim", "adamw", AdamWConfig, "torch AdamW (decoupled weight decay)",
          paper="Decoupled Weight Decay Regularization (arXiv 1711.05101)")
class AdamW(OptimMethod):
    def build(self, named_params):
        c = self.config
        return torch.optim.AdamW(param_groups(named_params, c.weight_decay), lr=c.lr, betas=c.betas, eps=c.eps)


# ---- pytorch-optimizer, every optimizer by name ---------------------------------------------------------------
def _validate_lib(self) -> None:
    lr = getattr(self, "lr", None)
    if lr is not None:
        check(isinstance(lr, (int, float)) and lr > 0, "lr", lr, "> 0")
    wd = getattr(self, "weight_decay", None)
    if wd is not None:
        check(isinstance(wd, (int, float)) and wd >= 0, "weight_decay", wd, "≥ 0")


def lib_config_class(name: str, cls: type) -> type:
    """A config dataclass generated from the library optimizer's signature (its keywords and defaults), so
    recipes are validated against exactly what the optimizer accepts."""
    fields_: list[tuple[str, Any, Any]] = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in ("self", "params") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = p.default if p.default is not inspect.Parameter.empty else None
        if isinstance(default, (list, dict, set)):
            default = field(default_factory=lambda d=default: type(d)(d))
        elif not isinstance(default, (int, float, str, bool, tuple, type(None))):
            continue  # callables/objects (e.g. a closure) are not recipe data
        else:
            default = field(default=default)
        fields_.append((p.name, Any, default))
    cfg = dataclasses.make_dataclass(f"{cls.__name__}Config", fields_, frozen=True,
                                     namespace={"__post_init__": _validate_lib})
    cfg.__module__ = __name__
    return cfg


class LibOptim(OptimMethod):
    """A pytorch-optimizer class built with leanfit's parameter groups (no decay on biases/norms)."""

    def __init__(self, config: Any, cls: type):
        super().__init__(config)
        self.cls = cls

    def build(self, named_params):
        kw = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()}
        wd = kw.pop("weight_decay", 0.0) or 0.0
        groups = param_groups(named_params, wd) if "weight_decay" in {f.name for f in dataclasses.fields(self.config)} \
            else [{"params": [p for _, p in named_params]}]
        return self.cls(groups, **kw)


def _register_library() -> None:
    try:
        from pytorch_optimizer import get_supported_optimizers, load_optimizer
    except ImportError:  # pragma: no cover
        return
    from ...registry import _REGISTRY

    for name in get_supported_optimizers():
        name = name.lower()
        if name in _REGISTRY["optim"]:
            continue  # torch's own (sgd, adamw) and our implementations win
        try:
            cls = load_optimizer(name)
            cfg = lib_config_class(name, cls)
        except Exception:  # noqa: BLE001 - a library entry that cannot load is skipped, not fatal
            continue
        doc = (inspect.getdoc(cls) or name).splitlines()[0]
        add(Entry("optim", name, lambda c, cls=cls: LibOptim(c, cls), cfg, f"pytorch-optimizer: {doc}",
                  meta={"via": "pytorch-optimizer"}))


_register_library()
