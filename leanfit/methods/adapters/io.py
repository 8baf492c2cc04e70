"""Save / load only an adapter's trainable tensors (adapter + task head) as safetensors.

The file's metadata names the method and its config (JSON), so ``load_adapter`` can rebuild the adapter on a fresh
base model and then copy the tensors in; methods with seeded or weight-derived frozen parts (NOLA's random
bases, LoRA-XS's SVD factors) regenerate them on ``apply`` and never store them.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ...engine.errors import ConfigError


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_adapter(model: nn.Module, path: str | Path, method: str, config) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    save_file(adapter_state(model), str(path),
              metadata={"leanfit_adapter": method, "config": json.dumps(cfg, default=list)})
    return path


def load_adapter(model: nn.Module, path: str | Path, task):
    """Apply the saved method to ``model`` (a fresh base model of ``task``) and load its tensors.
    Returns (model, adapter)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ...engine import registry

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "leanfit_adapter" not in meta:
        raise ConfigError(f"{path} is not a leanfit adapter file (no 'leanfit_adapter' metadata). "
                          f"Fix: save it with leanfit.methods.adapters.io.save_adapter.")
    adapter = registry.get("adapters", meta["leanfit_adapter"]).build(json.loads(meta["config"]))
    model = adapter.apply(model, task)
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    if set(tensors) != expected:
        raise ConfigError(f"{path}: tensors {sorted(set(tensors) ^ expected)[:5]} do not match the adapter's "
                          f"trainable parameters. Fix: load onto the same base model/task the adapter was saved from.")
    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t)
    return model, adapter
