"""peft's tuners exposed by name (wrapped, not rewritten): LoRA, DoRA, ... The task head stays trainable through
peft's ``modules_to_save``; default target modules come from the task."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ...errors import check
from ...registry import register
from ..base import Adapter


def _targets(cfg_targets: tuple[str, ...], task) -> list[str]:
    t = list(cfg_targets or task.target_modules)
    if not t:
        raise ValueError(f"task {task.name} names no default target modules; set target_modules in the adapter")
    return t


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

    def apply(self, model: nn.Module, task) -> nn.Module:
        import peft

        c = self.config
        cfg = peft.LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout,
                              target_modules=_targets(c.target_modules, task), modules_to_save=list(task.head),
                              use_dora=c.use_dora)
        return peft.get_peft_model(model, cfg)

    def merge(self, model: nn.Module) -> nn.Module:
        return model.merge_and_unload()
