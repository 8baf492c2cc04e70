"""Structured pruning of channels / FFN neurons / attention heads through torch-pruning's dependency graph.

Fang et al., "DepGraph: Towards Any Structural Pruning" (2301.12900): coupled parameters (a conv's output channels,
the next layer's input channels, norms in between) form one group and are removed together, so shapes really
shrink. We wrap ``torch_pruning.pruner.MetaPruner`` and choose what is pruned:

- ``target="channels"``: output channels/neurons of every non-head Conv/Linear (CNN and MLP tasks);
- ``target="ffn"``: intermediate neurons of transformer feed-forward blocks (``intermediate.dense``);
- ``target="heads"``: whole attention heads (``num_heads`` groups of query/key/value, ``prune_num_heads``).

Importance of a group g (torch-pruning sums/averages over the coupled parameters):
- ``magnitude``: ‖W_g‖₂ (Li et al., "Pruning Filters for Efficient ConvNets", 1608.08710);
- ``taylor``: |Σ w·∂L/∂w| over the group, gradients from calibration batches (Molchanov et al., "Importance
  Estimation for Neural Network Pruning", 1906.10771);
- ``activation``: mean |a_c| of the channel's activation on calibration data (seed paper: Zhao et al., "Adaptive
  Activation-based Structured Pruning", 2201.10520). torch-pruning's ``ActivationImportance`` keeps only the last
  batch and skips Conv1d, so we subclass it to average over all calibration batches for any Conv/Linear.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import LeanfitError, check, require
from ...engine.registry import register
from ...engine.task import is_head
from ..base import Compressor
from ._common import calibration_batches, check_removed_fraction, require_task

IMPORTANCES = ("magnitude", "taylor", "activation")
TARGETS = ("channels", "ffn", "heads")


def _activation_importance_cls():
    tp = require("torch_pruning", package="torch-pruning")

    class MeanActivationImportance(tp.importance.ActivationImportance):
        """Mean |input activation| per input channel, averaged over every calibration batch."""

        @contextmanager
        def compute_importance(self, model):
            sums: dict[nn.Module, list] = {}

            @torch.no_grad()
            def hook(module, inp, _out):
                x = inp[0].detach()
                if isinstance(module, nn.Linear):
                    a = x.abs().reshape(-1, x.shape[-1])  # [n, d_in]
                else:  # ConvNd: channels on dim 1
                    a = x.abs().transpose(0, 1).reshape(x.shape[1], -1).T  # [n, C_in]
                s = sums.setdefault(module, [0.0, 0])
                s[0] = s[0] + a.sum(0)
                s[1] += a.shape[0]

            hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
            try:
                yield
            finally:
                for h in hooks:
                    h.remove()
            for m, (total, n) in sums.items():
                m._importance = total / max(n, 1)

    return MeanActivationImportance


def _inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("labels", "index")}


def structured_prune(model: nn.Module, task, ratio: float, importance: str = "magnitude", target: str = "channels",
                     n_calib: int = 128) -> dict:
    """Prune in place; returns parameter counts and the shapes that changed (read from the tensors)."""
    tp = require("torch_pruning", package="torch-pruning")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for p in model.parameters():  # torch-pruning traces the autograd graph: frozen parameters would be invisible
        p.requires_grad_(True)
    try:
        return _structured_prune(model, task, ratio, importance, target, n_calib, tp)
    finally:  # pruned layers hold new Parameter objects, so restore by name
        for n, p in model.named_parameters():
            if n in frozen:
                p.requires_grad_(False)


def _structured_prune(model, task, ratio, importance, target, n_calib, tp) -> dict:
    before = {n: tuple(p.shape) for n, p in model.named_parameters()}
    n_before = sum(p.numel() for p in model.parameters())
    example = _inputs(next(iter(calibration_batches(task, 2))))
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    heads = [m for n, m in linears if is_head(n, task.head)]
    kw: dict = {}
    if target == "channels":
        ignored = heads
    elif target == "ffn":
        keep = [m for n, m in linears if n.endswith("intermediate.dense")]
        if not keep:
            raise LeanfitError("compress.structured target='ffn' found no '*.intermediate.dense' layers. "
                               "Fix: use target='channels' for CNN/MLP models.")
        ignored = [m for _, m in linears if not any(m is k for k in keep)]
    else:  # heads
        attn = [(n, m) for n, m in model.named_modules() if hasattr(m, "query") and hasattr(m, "key")
                and hasattr(m, "value") and hasattr(m, "num_attention_heads")]
        if not attn:
            raise LeanfitError("compress.structured target='heads' found no attention modules with query/key/value. "
                               "Fix: use target='channels' or 'ffn'.")
        qkv = {mod: a.num_attention_heads for _, a in attn for mod in (a.query, a.key, a.value)}
        ignored = [m for _, m in linears if m not in qkv]
        kw = dict(num_heads=qkv, prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=ratio)
    if importance == "magnitude":
        imp = tp.importance.GroupMagnitudeImportance(p=2)
    elif importance == "taylor":
        imp = tp.importance.GroupTaylorImportance()
    else:
        imp = _activation_importance_cls()()
    pruner = tp.pruner.MetaPruner(model, example_inputs=example, importance=imp, pruning_ratio=ratio,
                                  ignored_layers=ignored, **kw)
    was = model.training
    if importance == "taylor":
        model.zero_grad(set_to_none=True)
        for b in calibration_batches(task, n_calib):
            logits = task.forward(model, b)
            nn.functional.cross_entropy(logits, b["labels"], reduction="sum").backward()
    elif importance == "activation":
        model.eval()
        with torch.no_grad(), imp.compute_importance(model):
            for b in calibration_batches(task, n_calib):
                task.forward(model, b)
    pruner.step()
    model.zero_grad(set_to_none=True)
    model.train(was)
    if target == "heads":  # keep the attention modules' bookkeeping in step with the pruned projections
        for _, a in attn:
            hd = a.attention_head_size
            a.num_attention_heads = a.query.out_features // hd
            a.all_head_size = a.query.out_features
    after = {n: tuple(p.shape) for n, p in model.named_parameters()}
    n_after = sum(p.numel() for p in model.parameters())
    return {"params_before": n_before, "params_after": n_after, "removed_fraction": 1 - n_after / n_before,
            "shapes": {n: [list(before[n]), list(s)] for n, s in after.items() if before.get(n) != s}}


@dataclass(frozen=True)
class StructuredConfig:
    ratio: float = 0.3  # fraction of channels / neurons / heads removed in each pruned group
    importance: str = "magnitude"
    target: str = "channels"
    n_calib: int = 128

    def __post_init__(self) -> None:
        check_removed_fraction("ratio", self.ratio, allow_zero=False)
        check(self.importance in IMPORTANCES, "importance", self.importance, f"one of {IMPORTANCES}")
        check(self.target in TARGETS, "target", self.target, f"one of {TARGETS}")
        check(isinstance(self.n_calib, int) and self.n_calib >= 1, "n_calib", self.n_calib, "an integer >= 1")


@register("compress", "structured", StructuredConfig,
          "structured pruning of channels / FFN neurons / attention heads (torch-pruning dependency graph)",
          paper="DepGraph: Towards Any Structural Pruning (2301.12900)", reports="shapes", changes_shapes=True)
class Structured(Compressor):
    def compress(self, model, task=None):
        task = require_task(task, "structured")
        c = self.config
        return {"method": "structured", "target": c.target, "importance": c.importance, "ratio": c.ratio,
                **structured_prune(model, task, c.ratio, c.importance, c.target, c.n_calib)}
