"""Layer removal by Block Influence for transformer stacks.

Men et al., "ShortGPT: Layers in Large Language Models are More Redundant Than You Expect" (2403.03853), Eq. (1):
BI_i = 1 − E_{X,t} [ X_{i,t}ᵀ X_{i+1,t} / (‖X_{i,t}‖₂ ‖X_{i+1,t}‖₂) ], where X_i is the hidden state entering block
i and X_{i+1} the one leaving it, averaged over the real (non-padding) tokens t of the calibration set. The
``n_remove`` blocks with the lowest BI are deleted from the stack (the longest ``nn.ModuleList`` of identical
blocks, e.g. BERT's ``encoder.layer``); the model's ``num_hidden_layers`` config is updated to match.

Written by us (a few forward hooks); no maintained library offers it for encoder models.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import LeanfitError, check
from ...engine.registry import register
from ..base import Compressor
from ._common import calibration_batches, require_task


def find_block_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The longest ModuleList whose children all have the same type (the transformer blocks)."""
    best = None
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) >= 2 and len({type(c) for c in m}) == 1:
            if best is None or len(m) > len(best[1]):
                best = (name, m)
    if best is None:
        raise LeanfitError("compress.block_influence needs a stack of >= 2 identical blocks in an nn.ModuleList "
                           "(a transformer encoder), but the model has none. Fix: use it on a MiniLM/BERT task.")
    return best


def cosine_influence(x_in: torch.Tensor, x_out: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[float, int]:
    """Σ_t (1 − cos(x_in_t, x_out_t)) over real tokens, and the token count. x: [B, T, H], mask: [B, T]."""
    cos = nn.functional.cosine_similarity(x_in.double(), x_out.double(), dim=-1)  # [B, T]
    keep = torch.ones_like(cos, dtype=torch.bool) if mask is None else mask.bool()
    return float((1 - cos)[keep].sum()), int(keep.sum())


@torch.no_grad()
def block_influence(model: nn.Module, task, n_calib: int = 128) -> list[float]:
    """BI_i for every block of the stack (Eq. 1), on the first ``n_calib`` train rows."""
    _, blocks = find_block_stack(model)
    sums, counts = [0.0] * len(blocks), [0] * len(blocks)
    current_mask: list = [None]

    def make_hook(i):
        def hook(_m, args, kwargs, out):
            x_in = args[0] if args else kwargs["hidden_states"]
            x_out = out[0] if isinstance(out, (tuple, list)) else out
            s, c = cosine_influence(x_in, x_out, current_mask[0])
            sums[i] += s
            counts[i] += c
        return hook

    handles = [b.register_forward_hook(make_hook(i), with_kwargs=True) for i, b in enumerate(blocks)]
    was = model.training
    model.eval()
    try:
        for b in calibration_batches(task, n_calib):
            current_mask[0] = b.get("attention_mask")
            task.forward(model, b)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return [s / max(c, 1) for s, c in zip(sums, counts)]


def remove_blocks(model: nn.Module, drop: list[int]) -> list[int]:
    """Delete blocks by index (in place); returns the kept indices."""
    name, blocks = find_block_stack(model)
    kept = [i for i in range(len(blocks)) if i not in set(drop)]
    new = nn.ModuleList([blocks[i] for i in kept])
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    for m in model.modules():  # HF configs: keep num_hidden_layers truthful
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "num_hidden_layers"):
            cfg.num_hidden_layers = len(kept)
    for j, blk in enumerate(new):  # HF attention layers remember their index (used by caches)
        for sub in blk.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = j
    return kept


@dataclass(frozen=True)
class BlockInfluenceConfig:
    n_remove: int = 1
    n_calib: int = 128

    def __post_init__(self) -> None:
        check(isinstance(self.n_remove, int) and self.n_remove >= 1, "n_remove", self.n_remove, "an integer >= 1")
        check(isinstance(self.n_calib, int) and self.n_calib >= 1, "n_calib", self.n_calib, "an integer >= 1")


@register("compress", "block_influence", BlockInfluenceConfig,
          "remove the transformer blocks with the lowest Block Influence (1 − cos(in, out))",
          paper="ShortGPT: Layers in Large Language Models are More Redundant Than You Expect (2403.03853)",
          reports="layers", changes_shapes=True, needs_blocks=True)
class BlockInfluence(Compressor):
    def compress(self, model, task=None):
        task = require_task(task, "block_influence")
        bi = block_influence(model, task, self.config.n_calib)
        check(self.config.n_remove < len(bi), "n_remove", self.config.n_remove,
              f"< the number of blocks ({len(bi)})", "Fix: remove fewer blocks.")
        drop = sorted(sorted(range(len(bi)), key=lambda i: bi[i])[: self.config.n_remove])
        kept = remove_blocks(model, drop)
        return {"method": "block_influence", "block_influence": bi, "removed": drop, "kept": kept,
                "layers": len(find_block_stack(model)[1])}
