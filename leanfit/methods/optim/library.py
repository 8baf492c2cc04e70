"""Every optimizer in pytorch-optimizer by its lower-case name (wrapped, not re-written), with configs generated
from each optimizer's signature.

This is the optim axis' catch-all module (``registry.CATCH_ALL``): the registry imports it only when a name is not
one of our own optimizers (or the axis is listed), so validating ``adamw`` does not import pytorch-optimizer (and
transformers with it). Biases and norms get no weight decay (``standard.param_groups``). Optimizers that need
special groups get them here:

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
from typing import Any

import torch

from ...engine.errors import ConfigError, check
from ...engine.registry import Capabilities, Entry, add, signature_config
from ..base import OptimMethod
from .standard import param_groups

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


def _check_betas(config: Any) -> None:
    """Tuples of betas (``betas``, ``adamw_betas``, ...): as many numbers as the library's default, each in [0, 1),
    or [0, 1] where the default itself is 1 (PNM's noise beta); None only where the default is None."""
    for f in dataclasses.fields(config):
        v, default = getattr(config, f.name), f.default
        if "beta" not in f.name or not isinstance(default, tuple) or v is None:
            continue
        ok = isinstance(v, (list, tuple)) and len(v) == len(default) and all(
            (b is None and d is None) or (isinstance(b, (int, float)) and not isinstance(b, bool)
                                          and (0 <= b < 1 or b == d == 1))
            for b, d in zip(v, default))
        check(ok, f.name, v, f"{len(default)} numbers in [0, 1) like the default {default}",
              f"Fix: e.g. {f.name}: {list(default)}.")


def _library_accepts(config: Any, cls: type, name: str) -> None:
    """Build the optimizer on one dummy parameter, so the library's own range checks run now, when the recipe is
    validated, not after the data and model were loaded. Only its ValueErrors count: other failures come from the
    dummy (optimizers that need a model, a closure or special groups) and are left to the real build."""
    if name in UNSUPPORTED:
        return
    try:
        LibOptim(config, cls, name).build([("w", torch.nn.Parameter(torch.zeros(2, 2)))])
    except ValueError as e:
        raise ConfigError(f"the optimizer rejects these settings: {e}. Fix: see the library's documented "
                          f"ranges (pytorch-optimizer {name}).") from None
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def lib_config_class(name: str, cls: type) -> type:
    """A config dataclass generated from the library optimizer's signature (its keywords and defaults), so
    recipes are validated against exactly what the optimizer accepts: our checks (``_validate_lib``, betas), then
    the library's own on a dummy parameter."""
    def post_init(config: Any) -> None:
        _validate_lib(config)
        _check_betas(config)
        _library_accepts(config, cls, name)

    return signature_config(cls.__init__, f"{cls.__name__}Config", skip=("self", "params"), post_init=post_init,
                            defaults=DEFAULT_OVERRIDES.get(name), extra=GROUP_FIELDS.get(name, ()),
                            missing=None)


class LibOptim(OptimMethod):
    """A pytorch-optimizer class built with leanfit's parameter groups (no decay on biases/norms)."""

    def __init__(self, config: Any, cls: type, name: str = ""):
        super().__init__(config)
        self.cls, self.name = cls, name

    def build(self, named_params, task=None):
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


_register_library()
