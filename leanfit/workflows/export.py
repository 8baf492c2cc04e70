"""``leanfit export DIR --to hf OUT``: a saved model as a standard Hugging Face folder that loads without leanfit.

- causal LMs: ``save_pretrained`` of the (adapter-merged) model and its tokenizer — ``AutoModelForCausalLM``;
- text classifiers (encoder + mean pooling + a linear head): a sentence-transformers folder (Transformer →
  mean Pooling → Dense with identity activation), so ``SentenceTransformer(OUT).encode(texts)`` returns the
  class logits; written with sentence-transformers' own modules (``pip install "leanfit[export]"``).

GPTQ/RTN layers are written as their dequantized weights (the same values the model computes with); dynamically
int8-quantized layers as their dequantized weights (the export then differs from the int8 model by the runtime
activation quantization, stated in docs/export.md). Parity with the in-process model is tested in a fresh process.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..engine.errors import ConfigError, require
from .model_io import load


def export_hf(folder: str | Path, out: str | Path) -> Path:
    saved = load(folder)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"export folder {str(out)!r} is not empty. Fix: give a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    if saved.kind == "causal-lm":
        saved.model.save_pretrained(str(out), safe_serialization=True)
        saved.tokenizer.save_pretrained(str(out))
    elif saved.kind == "text-classifier":
        _sentence_transformers(saved, out)
    else:
        raise ConfigError(f"{folder}: a {saved.kind} model has no standard Hugging Face format. Fix: load it with "
                          "leanfit.load(DIR) (its weights are model.safetensors).")
    (out / "leanfit-export.json").write_text(json.dumps({"from": str(folder), "kind": saved.kind,
                                                          "labels": saved.labels}, indent=1))
    return out


def _sentence_transformers(saved, out: Path) -> None:
    require("sentence_transformers", extra="export")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    model = saved.model
    labels = saved.labels
    with tempfile.TemporaryDirectory() as tmp:  # the encoder as a plain HF folder, for ST's Transformer module
        model.encoder.config.id2label = dict(enumerate(labels))
        model.encoder.config.label2id = {n: i for i, n in enumerate(labels)}
        model.encoder.save_pretrained(tmp, safe_serialization=True)
        saved.tokenizer.save_pretrained(tmp)
        word = Transformer(tmp, max_seq_length=saved.manifest.get("max_length") or 512)
        head = model.classifier
        dense = Dense(head.in_features, head.out_features, bias=head.bias is not None,
                      activation_function=torch.nn.Identity(), init_weight=head.weight.detach().clone(),
                      init_bias=None if head.bias is None else head.bias.detach().clone())
        pool = Pooling(word.get_embedding_dimension() if hasattr(word, "get_embedding_dimension")
                       else word.get_word_embedding_dimension(), pooling_mode="mean")
        SentenceTransformer(modules=[word, pool, dense], device="cpu").save(str(out))
    shutil.copy(Path(saved.path) / "README.md", out / "LEANFIT-MODEL-CARD.md")
