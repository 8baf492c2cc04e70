"""Merging two causal-LM fine-tunes of one base (issue 12): saved `leanfit run --save` folders (a LoRA fine-tune,
merged on save, and a full fine-tune on another task) merged with TIES against the task's own pre-trained model
(`base: pretrained`), on a tiny random Llama; the merged weights are TIES of the saved weights, written out, and
each task is scored with them."""
from __future__ import annotations

import pytest
import torch

from leanfit import Recipe
from leanfit.engine.run import train_recipe
from leanfit.engine.task import build_task
from leanfit.methods.merge.arithmetic import ties_merge
from leanfit.methods.merge.rebasin import evaluate_sd
from leanfit.workflows.merge import run_merge
from leanfit.workflows.model_io import load, save

TINY = {"model": "tiny", "n_train": 32, "n_validation": 8, "n_test": 8}


def fine_tune(tmp_path, name, task, adapter):
    r = Recipe.from_dict({"task": {"name": task, **TINY}, "adapter": adapter,
                          "optimizer": {"name": "adamw", "lr": 3e-3}, "schedule": {"epochs": 1, "batch_size": 8}})
    result, run = train_recipe(r)
    assert result.status == "complete", result.error
    return save(tmp_path / name, run.model, run.task, result, run.adapter, result.recipe)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm-merge")
    return (fine_tune(tmp, "arith", "lm-arithmetic", {"name": "lora", "r": 4}),
            fine_tune(tmp, "text", "lm-bbc-text", "full"), tmp)


def test_ties_of_two_saved_lm_fine_tunes_against_the_pretrained_base(folders):
    a, b, tmp = folders
    out = run_merge({"method": "ties", "params": {"density": 0.5, "lam": 1.0}, "base": "pretrained",
                     "models": [str(a), str(b)], "output": str(tmp / "merged.safetensors")})
    assert [m["task"] for m in out["models"]] == ["lm-arithmetic", "lm-bbc-text"]
    base = build_task("lm-arithmetic", **TINY).build_model(0).state_dict()
    sds = [load(f).model.state_dict() for f in (a, b)]
    assert any(not torch.equal(sds[0][k], base[k]) for k in base)  # the LoRA fine-tune was merged into the weights
    want = ties_merge(base, sds, density=0.5, lam=1.0)
    from safetensors.torch import load_file

    got = load_file(str(tmp / "merged.safetensors"))
    assert set(got) == set(want) and all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    text = build_task("lm-bbc-text", **TINY)
    row = out["models"][1]
    assert row["merged_loss"] == pytest.approx(evaluate_sd(text.build_model(0), want, text, "test")["loss"], rel=1e-5)
    assert row["individual_accuracy"] == evaluate_sd(text.build_model(0), sds[1], text, "test")["accuracy"]


def test_a_separate_adapter_loads_back_and_merge_refuses_it_with_a_named_error(tmp_path):
    from leanfit.engine.errors import ConfigError

    r = Recipe.from_dict({"task": {"name": "lm-arithmetic", **TINY}, "adapter": {"name": "lora", "r": 4},
                          "schedule": {"epochs": 1, "batch_size": 8, "max_steps": 1}})
    result, run = train_recipe(r)
    sep = save(tmp_path / "sep", run.model, run.task, result, run.adapter, result.recipe, merge=False)
    assert (sep / "adapter.safetensors").exists() and not (sep / "model.safetensors").exists()
    b = run.task.batch("test", torch.arange(4))
    with torch.no_grad():  # the separate adapter loads back onto the base model as trained (old code: refused)
        want = run.model.eval()(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        got = load(sep).model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ConfigError, match="keeps its adapter separate"):
        run_merge({"method": "linear", "models": [str(sep), str(sep)]})


def test_merge_writes_one_model_folder_per_task_that_loads_and_exports_with_parity(folders):
    """``save:`` (issue 15): with per-task heads, save/<task>/ per task holding the merged weights (+ that task's
    head); each folder loads to exactly the merged model, its manifest carries the merged scores, and its Hugging
    Face export gives the same logits in a fresh process."""
    from safetensors.torch import load_file

    from leanfit.workflows.export import export_hf

    from .test_model_io import fresh

    a, b, tmp = folders
    out = run_merge({"method": "task_arithmetic", "params": {"lam": 0.7}, "base": "pretrained",
                     "models": [str(a), str(b)], "output": str(tmp / "ta.safetensors"), "save": str(tmp / "ta")})
    assert [p.split("/")[-1] for p in out["save"]] == ["lm-arithmetic", "lm-bbc-text"]
    merged = load_file(str(tmp / "ta.safetensors"))
    ids = torch.tensor([[13, 20, 21, 22, 23, 24, 25]])
    for folder, row in zip(out["save"], out["models"]):
        saved = load(folder)
        assert saved.manifest["test"] == {"accuracy": row["merged_accuracy"]}
        assert saved.manifest["merge"]["method"] == "task_arithmetic"
        ref = build_task(row["task"], **TINY).build_model(0)
        ref.load_state_dict({**ref.state_dict(), **merged})
        with torch.no_grad():
            want = ref.eval()(input_ids=ids).logits
            assert torch.equal(saved.model(input_ids=ids).logits, want)
    hf = export_hf(out["save"][0], tmp / "ta-hf")
    got = fresh(f"""
        import json, torch
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained({str(hf)!r}, attn_implementation="eager").eval()
        with torch.no_grad():
            print(json.dumps(m(input_ids=torch.tensor({ids.tolist()!r})).logits.tolist()))
    """)
    ref = load(out["save"][0]).model
    with torch.no_grad():
        assert torch.allclose(torch.tensor(got), ref(input_ids=ids).logits, atol=1e-5)
