"""Shared machinery of leanfit's own adapters: a self-contained module wrapper that swaps targeted ``nn.Linear``
layers of any ``nn.Module`` (Hugging Face models included) for an adapted layer that keeps the frozen original.

Why not a peft custom tuner: peft 0.21.2 has ``peft.utils.register_peft_method``, but it only accepts names that
already exist in the closed ``peft.utils.PeftType`` enum ("Unknown PEFT type ..., please add an entry to
PeftType"), so a new method cannot be registered without patching peft (tests/methods/test_adapters_peft.py pins
this). Our wrapper therefore follows peft's conventions instead: targets are module-name suffixes
(``"query"`` matches ``encoder.layer.0.attention.self.query``), the frozen layer lives at ``<name>.base``,
adapter tensors are the only trainable parameters besides the task head, and ``merge`` returns plain
``nn.Linear`` layers.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ...engine.errors import ConfigError
from ...engine.task import is_head
from ..base import Adapter, mark_head_trainable


def match_modules(model: nn.Module, targets: Iterable[str], head: Iterable[str] = (),
                  kind: type | tuple[type, ...] = nn.Linear) -> list[tuple[str, nn.Module]]:
    """Modules of type ``kind`` whose name equals or ends with ``.<target>`` (peft semantics), head excluded."""
    targets, head = tuple(targets), tuple(head)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, kind) and not isinstance(m, AdaptedLinear) and n and not is_head(n, head)
            and any(n == t or n.endswith("." + t) for t in targets)]


def head_param_count(model: nn.Module, task) -> int:
    """Parameters of the task head (they train with every adapter)."""
    return sum(p.numel() for n, p in model.named_parameters() if is_head(n, task.head))


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` (``self.base``) plus adapter tensors. Subclasses implement ``forward``; mergeable
    ones implement ``merged_weight_bias()`` returning the equivalent dense (W [d, k], b [d] or None)."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base.requires_grad_(False)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:  # some HF code reads .weight (dtype/device checks)
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def merged_weight_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} cannot be merged")

    def to_linear(self) -> nn.Linear:
        w, b = self.merged_weight_bias()
        out = nn.Linear(self.in_features, self.out_features, bias=b is not None,
                        device=w.device, dtype=w.dtype)
        with torch.no_grad():
            out.weight.copy_(w)
            if b is not None:
                out.bias.copy_(b)
        return out


class WrapperAdapter(Adapter):
    """Base of our Linear-wrapping adapters: freeze all, swap each targeted Linear for ``make_layer(name, lin,
    index)``, unfreeze the head. ``merge`` swaps every adapted layer back for its dense equivalent."""

    identity_at_init = True

    def targets(self, task) -> tuple[str, ...]:
        t = tuple(getattr(self.config, "target_modules", ()) or task.target_modules)
        if not t:
            raise ConfigError(f"task {task.name} names no default target modules. Fix: set target_modules in "
                              f"the adapter config.")
        return t

    def target_layers(self, model: nn.Module, task) -> list[tuple[str, nn.Linear]]:
        found = match_modules(model, self.targets(task), task.head)
        if not found:
            names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise ConfigError(f"target_modules={list(self.targets(task))} matched no nn.Linear layer (head "
                              f"excluded). Fix: use suffixes of these names: {names[:12]}")
        return found

    def make_layer(self, name: str, linear: nn.Linear, index: int) -> AdaptedLinear:
        raise NotImplementedError

    def apply(self, model: nn.Module, task) -> nn.Module:
        model.requires_grad_(False)
        for i, (name, lin) in enumerate(self.target_layers(model, task)):
            _set_submodule(model, name, self.make_layer(name, lin, i))
        mark_head_trainable(model, task.head)
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        if not self.mergeable:
            return super().merge(model)
        for name, m in list(model.named_modules()):
            if isinstance(m, AdaptedLinear):
                _set_submodule(model, name, m.to_linear())
        return model

    def param_formula(self, model: nn.Module, task) -> int:
        """Trainable parameters per the paper, from the un-adapted model's layer shapes (+ the task head)."""
        return sum(self.layer_params(lin) for _, lin in self.target_layers(model, task)) + self.shared_params(
            model, task) + head_param_count(model, task)

    def layer_params(self, linear: nn.Linear) -> int:
        raise NotImplementedError

    def shared_params(self, model: nn.Module, task) -> int:
        return 0

