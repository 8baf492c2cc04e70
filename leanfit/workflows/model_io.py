"""Trained models as self-describing folders: ``leanfit run --save DIR`` writes one, ``leanfit.load(DIR)`` reads
it back without the training data, and predict / evaluate / export / compress / merge take it.

A folder holds ``leanfit.json`` (kind, task, recipe, label names, max length, metrics on validation and test,
costs, data hash, versions), ``model.safetensors`` (adapters merged into the weights by default; GPTQ/RTN layers
stored as their integer codes + scales, 4-bit codes packed two per byte), the tokenizer, the model's architecture
(an encoder's or LM's ``config.json``) and ``README.md``, a model card with those numbers. With ``merge=False`` an
adapter is kept separate: the folder then names its base model folder and stores only the adapter's tensors.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.errors import ConfigError, DataError
from ..engine.result import RunResult

FORMAT = 1
MANIFEST = "leanfit.json"
KINDS = ("text-classifier", "causal-lm", "mlp", "cnn1d")


@dataclass
class SavedModel:
    """A loaded folder: the model (eval mode), its tokenizer (text and LM kinds) and its manifest."""

    model: nn.Module
    manifest: dict[str, Any]
    tokenizer: Any = None
    path: Path = field(default_factory=Path)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("labels") or [])


def check_writable(folder: str | Path, overwrite: bool = False) -> Path:
    """A folder that may be written: new, or empty, or a leanfit folder with ``overwrite``; checked before any
    training so a finished run is never lost to a bad path."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--save must name a folder, but {str(p)!r} is a file. Fix: give a new folder path.")
    if p.is_dir() and any(p.iterdir()) and not (overwrite and (p / MANIFEST).exists()):
        raise ConfigError(f"--save folder {str(p)!r} is not empty. Fix: give a new folder (or remove it).")
    p.mkdir(parents=True, exist_ok=True)
    probe = p / ".write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--save folder {str(p)!r} is not writable ({e.strerror}). Fix: choose another path.") from None
    return p


def save(folder: str | Path, model: nn.Module, task: Any, result: RunResult | None = None, adapter: Any = None,
         recipe: dict | None = None, merge: bool = True, overwrite: bool = True) -> Path:
    """Write ``model`` (trained on ``task``) as a leanfit model folder."""
    from safetensors.torch import save_file

    kind = task.meta.get("model_kind")
    if kind not in KINDS:
        raise ConfigError(f"task {task.name!r} cannot be saved: its model kind {kind!r} is not one of {KINDS}. "
                          "Fix: save the weights yourself with safetensors.torch.save_file(model.state_dict(), ...).")
    out = check_writable(folder, overwrite)
    separate = not merge and adapter is not None and recipe is not None and recipe.get("adapter", {}).get("name") \
        not in (None, "full", "head_only")
    if not separate and adapter is not None and getattr(adapter, "mergeable", False):
        model = adapter.merge(model)
    manifest = _manifest(task, kind, result, recipe, separate)
    if separate:  # named as on the wrapped model, which is what loading rebuilds from the recipe
        from ..methods.adapters.io import adapter_state

        save_file(adapter_state(model), str(out / "adapter.safetensors"))
    model = _unwrap(model)
    if not separate:
        sd, quant = packed_state_dict(model)
        manifest["quantized"] = quant
        save_file(sd, str(out / "model.safetensors"))
    _save_architecture(out, model, task, kind)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    (out / "README.md").write_text(model_card(manifest))
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    """A peft model whose adapter was merged (or never attached) back to the plain model."""
    base = getattr(model, "base_model", None)
    if base is not None and hasattr(model, "peft_config") and hasattr(base, "model"):
        return model.get_base_model() if hasattr(model, "get_base_model") else base.model
    return model


def _manifest(task: Any, kind: str, result: RunResult | None, recipe: dict | None, separate: bool) -> dict:
    from ..engine import __version__

    m = {"format": FORMAT, "kind": kind, "task": task.name, "task_description": task.description,
         "labels": list(task.meta.get("labels") or []), "max_length": task.meta.get("max_length"),
         "padding": task.meta.get("padding", "longest"), "base_model": task.meta.get("model_dir"),
         "model_args": task.meta.get("model_args"), "input_mean": task.meta.get("input_mean"),
         "input_std": task.meta.get("input_std"), "head": list(task.head),
         "target_modules": list(task.target_modules), "adapter_separate": separate, "recipe": recipe,
         "leanfit": __version__, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if kind == "causal-lm":
        m.update(choices=list(getattr(task, "choices", ())), exact_match=bool(getattr(task, "exact_match", False)),
                 max_new_tokens=int(getattr(task, "max_new_tokens", 8)), chat_template=task.meta.get("chat_template"))
    if result is not None:
        m.update(validation=result.metrics, test=result.test_metrics, costs=result.costs, flags=result.flags,
                 data_hash=result.data_hash, recipe_id=result.recipe_id, status=result.status,
                 best_checkpoint=result.extra.get("best_checkpoint"), compress=result.extra.get("compress"),
                 merge=result.extra.get("merge"))
    return m


def _save_architecture(out: Path, model: nn.Module, task: Any, kind: str) -> None:
    """What rebuilding the model needs besides the weights: the HF config(s) and the tokenizer."""
    if kind == "text-classifier":
        model.encoder.config.save_pretrained(str(out / "encoder"))
        _tokenizer_of(task).save_pretrained(str(out))
    elif kind == "causal-lm":
        model.config.save_pretrained(str(out / "lm"))
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(out / "lm"))
        task.tokenizer.save_pretrained(str(out))


def _tokenizer_of(task: Any) -> Any:
    from ..tasks.text import _tokenizer

    return _tokenizer(task.meta["model_dir"])


# ---- compressed layers on disk ------------------------------------------------------------------------------
def packed_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """The state dict to write: GPTQ/RTN layers as integer codes + per-row scales (4-bit packed two per byte),
    dynamically int8-quantized layers as their dequantized float weights (safetensors holds no quantized
    tensors); returns the quantized layers' {name: {bits, shape}} for loading."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from ..methods.compress.export import compressed_state_dict

    quant = {n: {"bits": int(m.quant_bits), "shape": list(m.weight.shape)} for n, m in model.named_modules()
             if hasattr(m, "quant_scale")}
    sd = compressed_state_dict(model) if quant else {k: v.contiguous() for k, v in _dedup(model.state_dict()).items()}
    for name, m in model.named_modules():
        if isinstance(m, QLinear):
            pre = f"{name}." if name else ""
            for k in [k for k in sd if k.startswith(pre)]:  # packed params, output scale and zero_point
                del sd[k]
            sd[pre + "weight"] = m.weight().dequantize().contiguous()
            if m.bias() is not None:
                sd[pre + "bias"] = m.bias().detach().contiguous()
    return sd, quant


def _dedup(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tied tensors (an LM's output embedding) stored once; loading re-ties them."""
    out, seen = {}, set()
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and not v.is_quantized:
            key = (v.data_ptr(), tuple(v.shape)) if v.numel() else (k,)
            if key in seen:
                continue
            seen.add(key)
            out[k] = v
    return out


def unpack_state_dict(sd: dict[str, torch.Tensor], quant: dict[str, dict]) -> dict[str, torch.Tensor]:
    from ..methods.compress.export import unpack4

    out = {k: v for k, v in sd.items() if not k.endswith((".weight_q", ".weight_scale"))}
    for name, info in quant.items():
        n = 1
        for d in info["shape"]:
            n *= d
        q = sd[f"{name}.weight_q"]
        codes = unpack4(q, n) if info["bits"] <= 4 else q.flatten()
        out[f"{name}.weight"] = (codes.float().view(info["shape"]) * sd[f"{name}.weight_scale"]).float()
    return out


# ---- loading --------------------------------------------------------------------------------------------------
def load(folder: str | Path) -> SavedModel:
    """A saved folder's model (eval mode), tokenizer and manifest — without the training data."""
    p = Path(folder)
    mf = p / MANIFEST
    if not mf.exists():
        raise DataError(f"{str(p)!r} is not a leanfit model folder (no {MANIFEST}). Fix: give a folder written by "
                        "`leanfit run --save` (or leanfit.save).")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{mf} is not valid JSON ({e}). Fix: save the model again.") from None
    model, tok = _build(p, manifest)
    model = _load_weights(p, manifest, model)
    model.eval()
    return SavedModel(model, manifest, tok, p)


def _build(p: Path, m: dict) -> tuple[nn.Module, Any]:
    kind = m.get("kind")
    if kind == "text-classifier":
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from ..tasks.text import PooledClassifier

        cfg = AutoConfig.from_pretrained(str(p / "encoder"))
        try:  # as trained: without BERT's (unused) pooler
            enc = AutoModel.from_config(cfg, attn_implementation="eager", add_pooling_layer=False)
        except TypeError:
            enc = AutoModel.from_config(cfg, attn_implementation="eager")
        return PooledClassifier(enc, cfg.hidden_size, len(m["labels"])), AutoTokenizer.from_pretrained(str(p))
    if kind == "causal-lm":
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        cfg = AutoConfig.from_pretrained(str(p / "lm"))
        return AutoModelForCausalLM.from_config(cfg, attn_implementation="eager"), AutoTokenizer.from_pretrained(str(p))
    if kind in ("mlp", "cnn1d"):
        from ..tasks.tabular import CNN1D, MLP

        return (MLP if kind == "mlp" else CNN1D)(**m["model_args"]), None
    raise DataError(f"{p}: unknown model kind {kind!r}; this leanfit reads {KINDS}. Fix: upgrade leanfit or save "
                    "the model again.")


def _load_weights(p: Path, m: dict, model: nn.Module) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    name = "adapter.safetensors" if m.get("adapter_separate") else "model.safetensors"
    try:
        sd = load_file(str(p / name))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise DataError(f"{p / name}: cannot read the weights ({e}). Fix: save the model again.") from None
    if m.get("adapter_separate"):
        return _apply_separate_adapter(p, m, model, sd)
    sd = unpack_state_dict(sd, m.get("quantized") or {})
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not _tied(model, k)]
    if missing or unexpected:
        raise DataError(f"{p / name} does not fit the saved architecture: missing {missing[:4]}, unexpected "
                        f"{unexpected[:4]}. Fix: save the model again with this leanfit.")
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model


def _tied(model: nn.Module, key: str) -> bool:
    """An output embedding tied to the input one is stored once (under the input's name)."""
    return key == "lm_head.weight" and bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))


def _apply_separate_adapter(p: Path, m: dict, model: nn.Module, sd: dict[str, torch.Tensor]) -> nn.Module:
    """Base weights from the base model folder, the adapter rebuilt from the recipe, then its tensors loaded."""
    from types import SimpleNamespace

    from ..engine import registry
    from ..engine.task import is_head

    base = m.get("base_model")
    if not base or not Path(base).exists():
        raise DataError(f"{p}: the adapter was saved separately and needs its base model folder {base!r}, which is "
                        "not there. Fix: restore that folder, or save the run again with the adapter merged.")
    if m["kind"] == "causal-lm":
        from ..tasks.lm_models import load_model

        model = load_model(base)
    elif m["kind"] == "text-classifier":
        import copy

        from ..tasks.text import _encoder

        model.encoder = copy.deepcopy(_encoder(base))
    head = tuple(m.get("head") or ())
    task = SimpleNamespace(name=m["task"], head=head, target_modules=tuple(m.get("target_modules") or ()),
                           is_head=lambda n: is_head(n, head))
    spec = dict(m["recipe"]["adapter"])
    model = registry.get("adapters", spec.pop("name")).build(spec).apply(model, task)
    params = dict(model.named_parameters())
    if set(sd) != {n for n, q in params.items() if q.requires_grad}:
        raise DataError(f"{p / 'adapter.safetensors'} does not match the adapter rebuilt from the recipe. Fix: save "
                        "the run again.")
    with torch.no_grad():
        for n, t in sd.items():
            params[n].copy_(t)
    return model


def model_card(m: dict) -> str:
    """README.md: what the model is, how it was trained, and its numbers."""
    rec = m.get("recipe") or {}
    lines = [f"# {m['task']} — a leanfit {m['kind']}", "", m.get("task_description") or "", "",
             f"- recipe: adapter `{(rec.get('adapter') or {}).get('name')}`, optimizer "
             f"`{(rec.get('optimizer') or {}).get('name')}`, seed {rec.get('seed')}",
             f"- base model: `{m.get('base_model')}`", f"- labels: {', '.join(m.get('labels') or []) or '—'}",
             f"- data hash: `{m.get('data_hash', '')}`", ""]
    if m.get("validation") or m.get("test"):
        keys = sorted(set(m.get("validation", {})) | set(m.get("test", {})))
        lines += ["| metric | validation | test |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(m.get('validation', {}).get(k))} | {_fmt(m.get('test', {}).get(k))} |" for k in keys]
        lines.append("")
    if m.get("costs"):
        lines += ["| cost | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in m["costs"].items()] + [""]
    if m.get("flags"):
        lines += [f"Flags: {', '.join(m['flags'])}", ""]
    if m.get("merge"):
        mg = m["merge"]
        lines += [f"Merged with `{mg['method']}` {mg.get('params') or ''} from: {', '.join(mg['models'])}", ""]
    lines += ["Load it with `leanfit.load(DIR)`, predict with `leanfit predict DIR --text ...`, and export a plain "
              "Hugging Face folder with `leanfit export DIR --to hf OUT`.", ""]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)
