"""Measuring a compressed model: parameters, non-zeros, bytes on disk (safetensors) and CPU latency side by side.

On disk, dynamically quantized Linear layers are stored as int8 tensors + scale/zero point, GPTQ/RTN layers as
int8 codes (packed two per byte when bits ≤ 4) + per-row float32 scales; everything else as in ``state_dict``.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import torch
from torch import nn


def _qlinear_cls():
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return QLinear


def pack4(q: torch.Tensor) -> torch.Tensor:
    """Signed 4-bit codes in [−8, 7] → uint8, two per byte (low nibble first); odd lengths padded with 0."""
    u = (q.flatten().to(torch.int16) + 8).to(torch.uint8)
    if u.numel() % 2:
        u = torch.cat([u, torch.full((1,), 8, dtype=torch.uint8)])
    return u[0::2] | (u[1::2] << 4)


def unpack4(p: torch.Tensor, n: int) -> torch.Tensor:
    u = torch.stack([p & 15, p >> 4], 1).flatten()[:n]
    return u.to(torch.int16).sub(8).to(torch.int8)


def compressed_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    QLinear = _qlinear_cls()
    out: dict[str, torch.Tensor] = {}
    skip: set[str] = set()
    for name, m in model.named_modules():
        pre = f"{name}." if name else ""
        if isinstance(m, QLinear):
            w = m.weight()
            out[pre + "weight_int8"] = w.int_repr().contiguous()
            if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                out[pre + "weight_scale"] = torch.tensor([w.q_scale()], dtype=torch.float32)
                out[pre + "weight_zero_point"] = torch.tensor([w.q_zero_point()], dtype=torch.int32)
            else:
                out[pre + "weight_scale"] = w.q_per_channel_scales().float()
                out[pre + "weight_zero_point"] = w.q_per_channel_zero_points().int()
            if m.bias() is not None:
                out[pre + "bias"] = m.bias().detach().contiguous()
            skip.add(pre)
        elif hasattr(m, "quant_scale"):
            q = torch.round(m.weight.detach().float() / m.quant_scale).to(torch.int8)
            out[pre + "weight_q"] = pack4(q) if m.quant_bits <= 4 else q.contiguous()
            out[pre + "weight_scale"] = m.quant_scale.detach().float().contiguous()
            skip.add(pre + "weight")
    qprefixes = tuple(p for p in skip if p.endswith("."))
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        if not isinstance(v, torch.Tensor) or v.is_quantized or k in skip or (qprefixes and k.startswith(qprefixes)):
            continue
        if v.numel() and v.data_ptr() in seen:  # shared (ALBERT-style) tensors are stored once
            continue
        seen.add(v.data_ptr())
        out[k] = v.detach().contiguous()
    return out


def file_bytes(model: nn.Module) -> int:
    """Size of the safetensors file of ``compressed_state_dict(model)``."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        save_file(compressed_state_dict(model), path)
        return os.path.getsize(path)


def count_weights(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zeros), counting int8 weights of quantized layers; shared tensors counted once."""
    QLinear = _qlinear_cls()
    total = nz = 0
    seen: set[int] = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total, nz = total + p.numel(), nz + int((p != 0).sum())
    for m in model.modules():
        if isinstance(m, QLinear):
            w = m.weight()
            zp = w.q_zero_point() if w.qscheme() == torch.per_tensor_affine else 0
            total, nz = total + w.numel(), nz + int((w.int_repr() != zp).sum())
            if m.bias() is not None:
                total, nz = total + m.bias().numel(), nz + int((m.bias() != 0).sum())
    return total, nz


@torch.no_grad()
def latency_side_by_side(task, models: dict[str, nn.Module], batch_size: int = 32, rounds: int = 15,
                         warmup: int = 2) -> dict[str, float]:
    """Median forward wall time (ms) of each model on the same eval batch, measured interleaved round by round."""
    b = task.batch("validation", torch.arange(min(batch_size, task.n_validation)))
    for m in models.values():
        m.eval()
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(warmup + rounds):
        for k, m in models.items():
            t0 = time.perf_counter()
            task.forward(m, b)
            if r >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(task, model: nn.Module, accuracy_fn=None) -> dict:
    """Parameters, non-zeros, file bytes, and accuracy on validation and on test (reported, never chosen on)."""
    from ._common import accuracy

    params, nz = count_weights(model)
    acc = accuracy_fn or accuracy
    return {"accuracy": acc(task, model, "validation"), "test_accuracy": acc(task, model, "test"), "params": params,
            "nonzeros": nz, "file_bytes": file_bytes(model)}
