"""Causal-LM task kind on a tiny random Llama (byte-level tokenizer, ~260k parameters): SFT loss against
transformers' own, batched greedy generation with left padding, rank classification, every axis on the LM, and the
named errors for bad LM inputs."""
from __future__ import annotations

import pytest
import torch

from leanfit import Recipe, run_recipe
from leanfit.engine.errors import ConfigError, DataError, LeanfitError
from leanfit.engine.task import build_task
from leanfit.tasks.lm import greedy, rank_choices

TINY = {"model": "tiny", "n_train": 48, "n_validation": 12, "n_test": 12}


@pytest.fixture(scope="module")
def arith():
    return build_task("lm-arithmetic", **TINY)


@pytest.fixture(scope="module")
def topic():
    return build_task("lm-bbc-topic", words=4, max_length=96, **TINY)


def test_completion_only_loss_equals_transformers_loss(arith):
    model = arith.build_model(0).eval()
    b = arith.batch("train", torch.arange(6))
    with torch.no_grad():
        ours = arith.per_sample_loss(arith.forward(model, b), b)
        for i in range(6):  # transformers' causal-LM loss (shifted, -100 ignored), one row at a time
            ref = model(input_ids=b["input_ids"][i:i + 1], attention_mask=b["attention_mask"][i:i + 1],
                        labels=b["labels"][i:i + 1]).loss
            assert ours[i] == pytest.approx(float(ref), rel=1e-5)
    prompt_len = int((b["labels"][0] != -100).nonzero()[0])  # the first loss token: prompt tokens carry none
    assert prompt_len > 0 and (b["labels"][0, :prompt_len] == -100).all()


def test_batched_greedy_with_left_padding_equals_one_prompt_at_a_time(arith):
    model = arith.build_model(0).eval()
    prompts = arith.generation["test"].prompts[:6]
    batched = greedy(model, arith.tokenizer, prompts, 6, batch_size=6)
    single = [greedy(model, arith.tokenizer, [p], 6, batch_size=1)[0] for p in prompts]
    assert batched == single


def test_rank_classification_picks_the_most_likely_completion(topic):
    model = topic.build_model(0).eval()
    tok, prompts = topic.tokenizer, topic.generation["validation"].prompts[:3]
    pred = rank_choices(model, tok, prompts, topic.choices, batch_size=4)
    for p, k in zip(prompts, pred.tolist()):
        lls = []
        for c in topic.choices:  # − the summed token loss of the choice after the prompt, from transformers
            cid = tok(c, add_special_tokens=False).input_ids
            ids = torch.tensor([p + cid])
            labels = torch.tensor([[-100] * len(p) + cid])
            with torch.no_grad():
                lls.append(-float(model(input_ids=ids, labels=labels).loss) * len(cid))
        assert k == max(range(len(lls)), key=lls.__getitem__)


def run(task_name, **kw):
    d = {"task": {"name": task_name, **TINY, **kw.pop("task", {})}, "optimizer": {"name": "adamw", "lr": 1e-3},
         "schedule": {"epochs": 1, "batch_size": 8}}
    d.update(kw)
    return run_recipe(Recipe.from_dict(d))


def test_sft_run_reports_lm_metrics_and_token_costs():
    r = run("lm-arithmetic", adapter={"name": "lora", "r": 4})
    assert r.status == "complete", r.error
    assert {"eval_loss", "perplexity", "accuracy", "token_accuracy"} <= set(r.metrics) and "accuracy" in r.test_metrics
    assert r.costs["tokens_seen"] < r.costs["padded_tokens_seen"]
    assert r.costs["trainable_params"] == 4 * sum(  # LoRA r(d+k) on q,k,v,o,gate,up,down of 4 layers
        a + b for a, b in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 256), (64, 256), (256, 64)]) * 4


@pytest.mark.parametrize("adapter", ["full", {"name": "lora", "r": 4}, {"name": "dora"}, "ia3", "lora_xs", "nola",
                                     {"name": "vera", "r": 16}])
def test_adapters_train_on_the_lm(adapter):
    r = run("lm-arithmetic", adapter=adapter)
    assert r.status == "complete", r.error


@pytest.mark.parametrize("data", [{"name": "rs2", "fraction": 0.5}, {"name": "loss_filter", "fraction": 0.5},
                                  {"name": "color_filter", "fraction": 0.5}, {"name": "s2l", "fraction": 0.5,
                                                                             "clusters": 3}])
def test_data_selectors_use_the_lm_loss(data):
    r = run("lm-arithmetic", data=data, adapter={"name": "lora", "r": 4})
    assert r.status == "complete", r.error
    assert r.extra["data_kept_rows"] == 24


def test_mezo_on_the_lm_keeps_no_gradients():
    r = run("lm-bbc-text", task={"n_train": 20}, optimizer={"name": "mezo", "lr": 1e-4})
    assert r.status == "complete" and r.costs["optimizer_state_bytes"] == 0
    assert r.costs["train_memory_bytes"] == 4 * r.costs["total_params"]  # weights only: no grads, no activations


@pytest.mark.parametrize("step", [{"name": "block_influence", "n_remove": 1}, {"name": "gptq", "bits": 4},
                                  {"name": "gptq", "bits": 4, "method": "rtn"}, {"name": "int8"},
                                  {"name": "svd", "energy": 0.9, "force": True}])
def test_compression_on_the_lm_keeps_generation_working(step, arith):
    r = run("lm-arithmetic", compress=[step], adapter="full")
    assert r.status == "complete", r.error
    rep = r.extra["compress"][0]
    if step["name"] == "block_influence":
        assert rep["layers"] == 3
    assert "accuracy" in r.test_metrics  # greedy generation ran on the compressed model


def test_compression_leaves_tied_output_embedding_alone():
    from leanfit.methods.compress._common import target_layers

    t = build_task("lm-arithmetic", **TINY)
    m = t.build_model(0)
    names = {n for n, _ in target_layers(m, t.head)}
    assert "lm_head" not in names and "model.layers.0.self_attn.q_proj" in names


def test_classifier_only_selectors_refuse_an_lm_with_a_named_error():
    r = None
    with pytest.raises(LeanfitError, match="needs class labels"):
        r = run("lm-arithmetic", data={"name": "el2n", "fraction": 0.5})
        if r.status == "failed":
            raise LeanfitError(r.error)


def test_bad_lm_inputs_give_named_errors(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("question,answer\nhi,there\n")
    with pytest.raises(DataError, match="column 'prompt' is not in .*Columns found: \\['answer', 'question'\\]"):
        build_task("lm-file", train=str(f), model="tiny")
    f.write_text("prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(20)) + "empty, \n")
    with pytest.raises(DataError, match="empty completion"):
        build_task("lm-file", train=str(f), model="tiny")
    f.write_text("prompt,completion\n" + "".join(f"{'x' * 80}{i},a\n" for i in range(20)))
    with pytest.raises(DataError, match="prompt is 8\\d tokens, not shorter than max_length 64"):
        build_task("lm-file", train=str(f), model="tiny")
    from leanfit.tasks.text import minilm_dir

    with pytest.raises(DataError, match="not a causal language model"):
        build_task("lm-file", train=str(f), model=str(minilm_dir()))


@pytest.mark.parametrize("name, kw", [("lm-arithmetic", {}), ("lm-bbc-text", {"max_length": 32})])
def test_packing_keeps_every_loss_term_and_no_attention_across_examples(name, kw):
    """Packed rows give exactly the unpacked per-token losses (SFT and plain LM). Passing the attention mask, or
    letting the model build a cache, would let examples attend to each other and change them."""
    from leanfit.tasks.lm import lm_forward, token_losses

    plain = build_task(name, **TINY, **kw)
    packed = build_task(name, **TINY, **kw, packing=128)
    assert len(packed.train["input_ids"]) < len(plain.train["input_ids"]) // 2
    assert int(packed.train["attention_mask"].sum()) == int(plain.train["attention_mask"].sum())
    model = plain.build_model(0).eval()

    def terms(task):
        with torch.no_grad():
            b = task.batch("train", torch.arange(len(task.train["input_ids"])))
            ce, mask = token_losses(lm_forward(model, b), b["labels"])
        return ce[mask].sort().values

    a, b = terms(plain), terms(packed)
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ConfigError, match="packing must be 0 .off. or a packed row length"):
        build_task(name, **TINY, **kw, packing=4)


def test_a_packed_run_trains_on_fewer_padded_tokens():
    plain = run("lm-arithmetic", adapter={"name": "lora", "r": 4})
    packed = run("lm-arithmetic", adapter={"name": "lora", "r": 4}, task={"packing": 128})
    assert packed.status == "complete", packed.error
    assert packed.costs["tokens_seen"] == plain.costs["tokens_seen"]
    pad = {k: r.costs["padded_tokens_seen"] - r.costs["tokens_seen"] for k, r in (("plain", plain), ("packed", packed))}
    assert pad["packed"] < 0.25 * pad["plain"]
    assert packed.costs["train_flops"] < plain.costs["train_flops"]


def test_one_token_choices_are_ranked_in_one_pass_exactly_like_one_forward_per_choice(arith):
    """Single-token choices: one forward per prompt gives the same ranking as the per-(prompt, choice) path."""
    model = arith.build_model(0).eval()
    prompts = arith.generation["validation"].prompts
    choices = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    assert all(len(arith.tokenizer(c, add_special_tokens=False).input_ids) == 1 for c in choices)
    with torch.no_grad():
        fast = rank_choices(model, arith.tokenizer, prompts, choices, batch_size=4)
        slow = rank_choices(model, arith.tokenizer, prompts, choices, batch_size=4, one_pass=False)
    assert torch.equal(fast, slow) and len(set(fast.tolist())) > 1
