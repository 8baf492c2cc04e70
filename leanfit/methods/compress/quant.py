"""Post-training weight quantization of Linear layers: dynamic int8 (torch.ao) and GPTQ (with RTN as baseline).

- ``int8``: Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference" (1712.05877): affine int8 weights q = round(w/scale) (+ zero point), activations quantized on the fly
  per batch. Wraps ``torch.ao.quantization.quantize_dynamic`` (works on CPU here; torchao is not installed).
- ``gptq``: Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"
  (2210.17323), Algorithm 1. Per layer, with calibration inputs X ([d_in, n]): H = 2XXᵀ + λI (λ = 1% of mean
  diag, "dampening"), U = Cholesky(H⁻¹)ᵀ (upper). Columns are quantized left to right; after column i,
  err = (w_i − q(w_i)) / U_ii and the not-yet-quantized columns get w_j −= err·U_ij (j > i), applied lazily in
  blocks of 128 columns (the paper's "lazy batch" update). Layers are processed in forward order, each seeing the
  already-quantized earlier layers. Grid: symmetric per output row, scale = max|w_row| / (2^{b−1} − 1).
  Our own implementation of the paper's algorithm (no maintained CPU library for plain nn.Linear).
- ``rtn``: round-to-nearest on the same grid — the baseline GPTQ is compared with.

Quantized layers keep float weights equal to scale·q (so the model runs anywhere) and carry ``quant_bits`` /
``quant_scale`` attributes; ``leanfit.methods.compress.export`` stores them as int8 (or packed 4-bit) + scales.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ...engine.errors import check
from ...engine.registry import register
from ..base import Compressor
from ._common import calibration_batches, require_task, target_layers


def quant_grid(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row symmetric scale: max|w_row| / (2^{b−1} − 1); [out, 1]."""
    qmax = 2 ** (bits - 1) - 1
    return (w.abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-12)


def quantize(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Dequantized value of the nearest grid point: scale · clamp(round(w/scale), −qmax, qmax)."""
    qmax = 2 ** (bits - 1) - 1
    return scale * torch.clamp(torch.round(w / scale), -qmax, qmax)


def rtn_quantize(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    scale = quant_grid(w, bits)
    return quantize(w, scale, bits), scale


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, bits: int, block: int = 128,
                  damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ Algorithm 1 for one weight matrix w [out, in] with H = 2XXᵀ [in, in]. Returns (q(w), scale)."""
    w = w.detach().double().clone()
    h = hessian.double().clone()
    dead = torch.diag(h) == 0  # inputs that are always zero: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)  # [in, in]
    scale = quant_grid(w, bits)
    q = torch.zeros_like(w)
    n = w.shape[1]
    for b0 in range(0, n, block):
        b1 = min(b0 + block, n)
        wb, errb = w[:, b0:b1].clone(), torch.zeros_like(w[:, b0:b1])
        ub = u[b0:b1, b0:b1]
        for i in range(b1 - b0):
            qi = quantize(wb[:, i:i + 1], scale, bits)[:, 0]
            q[:, b0 + i] = qi
            err = (wb[:, i] - qi) / ub[i, i]
            wb[:, i + 1:] -= err[:, None] * ub[i, i + 1:][None, :]
            errb[:, i] = err
        w[:, b1:] -= errb @ u[b0:b1, b1:]  # lazy batch update of the later columns
    return q, scale


def _mark(m: nn.Linear, q: torch.Tensor, scale: torch.Tensor, bits: int) -> None:
    with torch.no_grad():
        m.weight.copy_(q.to(m.weight.dtype))
    m.quant_bits, m.quant_scale = bits, scale.to(torch.float32)


def _linears(model: nn.Module, head: tuple[str, ...], include_head: bool) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in target_layers(model, head, (nn.Linear,), include_head) if type(m) is nn.Linear]


@torch.no_grad()
def layer_hessian(model: nn.Module, layer: nn.Linear, task, n_calib: int) -> torch.Tensor:
    """H = 2/n Σ x xᵀ over every calibration token that enters ``layer`` (inputs flattened to [n, d_in])."""
    h = torch.zeros(layer.in_features, layer.in_features, dtype=torch.float64)
    count = [0]

    def hook(_m, inp):
        x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()  # [n, d_in]
        h.add_(2 * x.T @ x)
        count[0] += x.shape[0]

    handle = layer.register_forward_pre_hook(hook)
    was = model.training
    model.eval()
    try:
        for b in calibration_batches(task, n_calib):
            task.forward(model, b)
    finally:
        handle.remove()
        model.train(was)
    return h / max(count[0], 1)


def bits_of(model: nn.Module) -> dict:
    """Bits per weight read from the tensors: log2 of the integer range actually used by w/scale."""
    out = {}
    for n, m in model.named_modules():
        if hasattr(m, "quant_scale"):
            q = torch.round(m.weight.detach().float() / m.quant_scale)
            assert torch.allclose(q * m.quant_scale, m.weight.detach().float(), atol=1e-6, rtol=1e-5), n
            out[n] = int(torch.ceil(torch.log2(2 * q.abs().max() + 1)).item()) if q.numel() else 0
    return out


@dataclass(frozen=True)
class GPTQConfig:
    bits: int = 4
    n_calib: int = 128
    block: int = 128
    damp: float = 0.01
    include_head: bool = False
    method: str = "gptq"  # "gptq" or "rtn" (the baseline on the same grid)
    embedding_bits: int = 0  # > 0: also round-to-nearest the nn.Embedding tables (per row; no Hessian for lookups)

    def __post_init__(self) -> None:
        check(isinstance(self.bits, int) and 2 <= self.bits <= 8, "bits", self.bits, "an integer in [2, 8]")
        check(isinstance(self.n_calib, int) and self.n_calib >= 1, "n_calib", self.n_calib, "an integer >= 1")
        check(isinstance(self.block, int) and self.block >= 1, "block", self.block, "an integer >= 1")
        check(0 <= self.damp < 1, "damp", self.damp, "in [0, 1)")
        check(self.method in ("gptq", "rtn"), "method", self.method, "'gptq' or 'rtn'")
        check(isinstance(self.embedding_bits, int) and (self.embedding_bits == 0 or 2 <= self.embedding_bits <= 8),
              "embedding_bits", self.embedding_bits, "0 (keep float) or an integer in [2, 8]")


def gptq_model(model: nn.Module, task, cfg: GPTQConfig) -> dict:
    """Quantize every (non-head) Linear in forward order; returns per-layer output error vs the float layer."""
    errors = {}
    for name, lin in _linears(model, task.head if task else (), cfg.include_head):
        w = lin.weight.detach().double()
        if cfg.method == "rtn":
            q, scale = rtn_quantize(w, cfg.bits)
            h = layer_hessian(model, lin, task, cfg.n_calib) if task is not None else None
        else:
            h = layer_hessian(model, lin, task, cfg.n_calib)
            q, scale = gptq_quantize(w, h, cfg.bits, cfg.block, cfg.damp)
        if h is not None:  # ‖(W − Q) X‖² / n  =  tr((W−Q) H (W−Q)ᵀ) / 2
            d = w - q
            errors[name] = float(torch.einsum("oi,ij,oj->", d, h, d) / 2)
        _mark(lin, q, scale, cfg.bits)
    if cfg.embedding_bits:
        for _name, emb in model.named_modules():
            if isinstance(emb, nn.Embedding):
                q, scale = rtn_quantize(emb.weight.detach().double(), cfg.embedding_bits)
                _mark(emb, q, scale, cfg.embedding_bits)
    return {"layer_error": errors, "total_error": sum(errors.values())}


@register("compress", "gptq", GPTQConfig, "GPTQ weight quantization of Linear layers with a calibration set",
          paper="GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers (2210.17323)",
          reports="bits")
class GPTQ(Compressor):
    def compress(self, model, task=None):
        task = require_task(task, "gptq") if self.config.method == "gptq" else task
        rep = gptq_model(model, task, self.config)
        return {"method": self.config.method, "target_bits": self.config.bits, "bits": bits_of(model), **rep}


@dataclass(frozen=True)
class Int8Config:
    include_head: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.include_head, bool), "include_head", self.include_head, "true or false")


def int8_dynamic(model: nn.Module, head: tuple[str, ...] = (), include_head: bool = False) -> dict:
    """Replace (non-head) Linear layers by dynamically quantized int8 ones, in place. Bits read from the tensors."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.quantization import quantize_dynamic

    names = {n for n, _ in _linears(model, head, include_head)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)
    model.eval()
    bits = {n: torch.iinfo(m.weight().int_repr().dtype).bits for n, m in model.named_modules() if isinstance(m, QLinear)}
    return {"bits": bits, "layers_quantized": len(bits)}


@register("compress", "int8", Int8Config, "dynamic int8 quantization of Linear layers (torch.ao, CPU)",
          paper="Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference "
                "(1712.05877)", reports="bits")
class Int8(Compressor):
    def compress(self, model, task=None):
        return {"method": "int8", **int8_dynamic(model, task.head if task else (), self.config.include_head)}
