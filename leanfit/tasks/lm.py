"""Causal-LM fine-tuning as a task kind: supervised fine-tuning on (prompt, completion) pairs with the loss on
the completion tokens only (prompt and padding labelled -100, as in standard SFT), or plain language modelling on
text (loss on every token) for continued pre-training.

Metrics (validation during training, test once at the end): ``eval_loss`` (mean over loss tokens) and
``perplexity`` = exp(eval_loss); ``accuracy`` = exact match of greedy generation (bounded ``max_new_tokens``,
batched with left padding) where the completions are short answers, else next-token accuracy on the loss tokens;
``rank_accuracy`` for a closed label set (the label with the highest log-likelihood as the completion). Generation
is evaluation cost, never train cost.

Training batches are right-padded and trimmed to their longest row (dynamic padding); position ids follow from
the attention mask. With ``packing: N`` the train split is packed into rows of ≤ N tokens instead
(``pack_rows``). Attention is eager so the FLOP meter counts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..engine.errors import DataError, check
from ..engine.metrics import Evaluation, classification_evaluation
from ..engine.task import Task, TensorDict, trim_padding

IGNORE = -100


def lm_forward(model: nn.Module, batch: TensorDict) -> torch.Tensor:
    """Next-token logits [B, T, V] (labels are not passed: the task computes its own loss). Packed rows go in with
    their restarting position ids and no attention mask or cache: transformers then builds the block-diagonal
    causal mask from the position ids (``masking_utils.find_packed_sequence_indices``)."""
    if "position_ids" in batch:
        return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def pack_rows(split: TensorDict, pad_id: int, width: int) -> TensorDict:
    """Sequence packing for training (as Hugging Face's DataCollatorWithFlattening): consecutive rows, in order,
    concatenated into rows of at most ``width`` tokens. Position ids restart at every example and each example's
    first label is ignored, so no token attends to or predicts across an example boundary and the loss terms are
    exactly the unpacked ones (tested). Right padding continues the last example's positions; pads come after every
    real token, so causal attention never shows them to a real token, and their labels are ignored."""
    lens = split["attention_mask"].sum(1).tolist()
    packs: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(lens):
        if packs[-1] and used + n > width:
            packs.append([])
            used = 0
        packs[-1].append(i)
        used += n
    shape = (len(packs), width)
    out = {"input_ids": torch.full(shape, pad_id, dtype=torch.long), "labels": torch.full(shape, IGNORE),
           "attention_mask": torch.zeros(shape, dtype=torch.long), "position_ids": torch.zeros(shape, dtype=torch.long)}
    for r, rows in enumerate(packs):
        at = 0
        for i in rows:
            n = lens[i]
            out["input_ids"][r, at:at + n] = split["input_ids"][i, :n]
            out["labels"][r, at:at + n] = split["labels"][i, :n]
            out["labels"][r, at] = IGNORE
            out["attention_mask"][r, at:at + n] = 1
            out["position_ids"][r, at:at + n] = torch.arange(n)
            at += n
        out["position_ids"][r, at:] = torch.arange(lens[rows[-1]], lens[rows[-1]] + width - at)
    return out


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of predicting token t+1 from position t, and the mask of loss tokens; [B, T-1]."""
    target = labels[:, 1:]
    ce = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), target.clamp_min(0), reduction="none")
    mask = target != IGNORE
    return ce * mask, mask


@dataclass
class GenerationData:
    """What evaluating a split's generations needs: the prompt token ids (unpadded) and the reference answers."""

    prompts: list[list[int]]
    answers: list[str]


@dataclass
class CausalLMTask(Task):
    tokenizer: Any = None
    generation: dict[str, GenerationData] = field(default_factory=dict)  # split → prompts/answers (SFT tasks)
    choices: tuple[str, ...] = ()  # a closed label set: rank classification over these completions
    max_new_tokens: int = 8
    exact_match: bool = False  # accuracy = exact match of greedy generations (else next-token accuracy)

    def per_sample_loss(self, outputs: torch.Tensor, batch: TensorDict) -> torch.Tensor:
        """Mean completion-token loss of each row [B] (every token's for plain LM data)."""
        ce, mask = token_losses(outputs, batch["labels"])
        return ce.sum(1) / mask.sum(1).clamp_min(1)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, split: str = "validation", rows: torch.Tensor | None = None,
                 batch_size: int | None = None, to_device=None, forward=None) -> Evaluation:
        rows = torch.arange(self.n_rows(split)) if rows is None else rows
        was = model.training
        model.eval()
        try:
            loss_sum, n_tok, correct = 0.0, 0, 0
            for idx in rows.split(batch_size or self.eval_batch_size):
                b = self.batch(split, idx)
                b = to_device(b) if to_device else b
                logits = (forward or self.forward)(model, b)
                ce, mask = token_losses(logits, b["labels"])
                loss_sum, n_tok = loss_sum + float(ce.sum()), n_tok + int(mask.sum())
                correct += int(((logits[:, :-1].argmax(-1) == b["labels"][:, 1:]) & mask).sum())
            loss = loss_sum / max(n_tok, 1)
            ev = Evaluation(metrics={"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                                     "token_accuracy": correct / max(n_tok, 1)})
            ev.metrics["accuracy"] = ev.metrics["token_accuracy"]
            gen = self.generation.get(split)
            if gen is not None and (self.exact_match or self.choices):
                self._generation_metrics(model, gen, rows, ev)
        finally:
            model.train(was)
        return ev

    def _generation_metrics(self, model: nn.Module, gen: GenerationData, rows: torch.Tensor, ev: Evaluation) -> None:
        ids = rows.tolist()
        prompts, answers = [gen.prompts[i] for i in ids], [gen.answers[i] for i in ids]
        if self.exact_match:
            outs = greedy(model, self.tokenizer, prompts, self.max_new_tokens, self.eval_batch_size)
            hits = [normalise_answer(o) == normalise_answer(a) for o, a in zip(outs, answers)]
            ev.metrics["accuracy"] = sum(hits) / max(len(hits), 1)
            ev.details["examples"] = [{"answer": a, "generated": o} for o, a in list(zip(outs, answers))[:5]]
        if self.choices:
            pred = rank_choices(model, self.tokenizer, prompts, self.choices, self.eval_batch_size)
            gold = torch.tensor([self.choices.index(a) if a in self.choices else -1 for a in answers])
            scores = torch.nn.functional.one_hot(pred, len(self.choices)).float()
            cls = classification_evaluation(scores[gold >= 0], gold[gold >= 0], len(self.choices),
                                            [c.strip() for c in self.choices])
            ev.metrics["rank_accuracy"] = cls.metrics["accuracy"]
            ev.details.update(rank=cls.details)
            ev.flags += cls.flags


def normalise_answer(text: str) -> str:
    """The part of a completion an exact match compares: its first line, stripped, case-folded."""
    return text.strip().split("\n")[0].strip().rstrip(".").casefold()


def _pad(seqs: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, sl], mask[i, sl] = torch.tensor(list(s), dtype=torch.long), 1
    return ids, mask


def greedy(model: nn.Module, tok: Any, prompts: list[list[int]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Batched greedy decoding with left padding (position ids follow the attention mask); decoded new text."""
    out = []
    for i in range(0, len(prompts), batch_size):
        ids, mask = _pad(prompts[i:i + batch_size], tok.pad_token_id, left=True)
        dev = next(model.parameters()).device
        gen = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out += tok.batch_decode(gen[:, ids.shape[1]:].cpu(), skip_special_tokens=True)
    return out


def rank_choices(model: nn.Module, tok: Any, prompts: list[list[int]], choices: Sequence[str],
                 batch_size: int, one_pass: bool = True) -> torch.Tensor:
    """For each prompt, the index of the choice with the highest total log-likelihood as its completion. When every
    choice is one token (BBC's topics for SmolLM2) one forward per prompt scores them all at the prompt's last
    position — the same ranking as a forward per (prompt, choice), at 1/len(choices) of the cost."""
    choice_ids = [tok(c, add_special_tokens=False).input_ids for c in choices]
    if one_pass and all(len(c) == 1 for c in choice_ids):
        return _rank_one_token(model, tok, prompts, [c[0] for c in choice_ids], batch_size)
    seqs, spans = [], []
    for p in prompts:
        for c in choice_ids:
            seqs.append(p + c)
            spans.append((len(p), len(c)))
    scores = []
    for i in range(0, len(seqs), batch_size):
        ids, mask = _pad(seqs[i:i + batch_size], tok.pad_token_id, left=False)
        dev = next(model.parameters()).device
        logp = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float().log_softmax(-1).cpu()
        for j, (start, n) in enumerate(spans[i:i + batch_size]):
            pos = torch.arange(start - 1, start - 1 + n)
            scores.append(float(logp[j, pos, ids[j, start:start + n]].sum()))
    return torch.tensor(scores).view(len(prompts), len(choices)).argmax(1)


def _rank_one_token(model: nn.Module, tok: Any, prompts: list[list[int]], tokens: list[int],
                    batch_size: int) -> torch.Tensor:
    preds, dev = [], next(model.parameters()).device
    for i in range(0, len(prompts), batch_size):
        ids, mask = _pad(prompts[i:i + batch_size], tok.pad_token_id, left=False)
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        last = mask.sum(1).to(dev) - 1
        preds.append(logits[torch.arange(len(ids), device=dev), last][:, tokens].float().argmax(1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


# ---- encoding ----------------------------------------------------------------------------------------------------
def prompt_text(tok: Any, prompt: str, chat: bool) -> str:
    if not chat:
        return prompt
    if not getattr(tok, "chat_template", None):
        raise DataError("chat_template: true, but the model's tokenizer has no chat template. Fix: set "
                        "chat_template: false (plain prompts).")
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def encode_sft(tok: Any, prompts: list[str], completions: list[str], max_length: int, chat: bool = False,
               where: str = "data") -> tuple[TensorDict, list[list[int]]]:
    """Right-padded SFT tensors (labels -100 on prompt and padding; the completion ends with EOS) and the prompt
    token ids per row (for generation). A prompt that leaves no room for its completion is an error."""
    rows, prompt_ids = [], []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        pi = tok(prompt_text(tok, p, chat), add_special_tokens=False).input_ids
        ci = tok(c, add_special_tokens=False).input_ids
        if not c.strip() or not ci:
            raise DataError(f"{where}: row {i} has an empty completion. Fix: drop the row or give its completion.")
        if len(pi) >= max_length:
            raise DataError(f"{where}: row {i}'s prompt is {len(pi)} tokens, not shorter than max_length "
                            f"{max_length}, so no completion token fits. Fix: raise max_length or shorten the prompt.")
        ids = (pi + ci + [tok.eos_token_id])[:max_length]
        rows.append((ids, [IGNORE] * len(pi) + ids[len(pi):]))
        prompt_ids.append(pi)
    return _tensors(rows, tok.pad_token_id, max_length), prompt_ids


def encode_text(tok: Any, texts: list[str], max_length: int, min_tokens: int = 8) -> TensorDict:
    """Plain LM data: each text cut into windows of ``max_length`` tokens (tails under ``min_tokens`` dropped), loss
    on every token."""
    rows = []
    for t in texts:
        ids = tok(t, add_special_tokens=False).input_ids + [tok.eos_token_id]
        rows += [(ids[i:i + max_length], ids[i:i + max_length]) for i in range(0, len(ids), max_length)
                 if len(ids[i:i + max_length]) >= min_tokens]
    if not rows:
        raise DataError(f"the texts give no window of at least {min_tokens} tokens. Fix: give longer texts.")
    return _tensors(rows, tok.pad_token_id, max_length)


def _tensors(rows: list[tuple[list[int], list[int]]], pad_id: int, width: int) -> TensorDict:
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)], mask[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lm_task(name: str, folder: str, splits: dict[str, TensorDict], description: str, *, tokenizer: Any,
            generation: dict[str, GenerationData] | None = None, choices: Sequence[str] = (),
            exact_match: bool = False, max_new_tokens: int = 8, meta: dict | None = None,
            packing: int = 0) -> CausalLMTask:
    from .lm_models import default_targets, load_model

    width = int(splits["train"]["input_ids"].shape[1])
    check(type(packing) is int and (packing == 0 or packing >= width), f"{name} packing", packing,
          f"0 (off) or a packed row length in tokens ≥ max_length {width}", "Fix: e.g. packing: 256.")
    if packing:  # train only: evaluation and generation keep one example per row
        n = len(splits["train"]["input_ids"])
        splits = {**splits, "train": pack_rows(splits["train"], tokenizer.pad_token_id, packing)}
        description += f"; train packed: {n} examples in {len(splits['train']['input_ids'])} rows of ≤{packing} tokens"
    return CausalLMTask(
        name=name, build_model=lambda seed: load_model(folder), train=splits["train"],
        validation=splits["validation"], test=splits["test"], num_classes=len(choices), head=(),
        target_modules=default_targets(folder), forward=lm_forward, description=description,
        meta={"model_kind": "causal-lm", "model_dir": folder, "labels": [c.strip() for c in choices],
              "max_length": width, "packing": packing, **(meta or {})},
        collate=trim_padding(8), eval_batch_size=16, kind="causal-lm", tokenizer=tokenizer,
        generation=generation or {}, choices=tuple(choices), max_new_tokens=max_new_tokens, exact_match=exact_match)
