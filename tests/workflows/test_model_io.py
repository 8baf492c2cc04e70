"""Save → load → predict → export (issue 15): a saved folder rebuilds the trained model without the training data,
predictions match the in-process model, and a Hugging Face export loads with plain transformers /
sentence-transformers in a fresh process and gives the same outputs (parity within 1e-5 in fp32)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from leanfit import Recipe
from leanfit.engine.run import train_recipe
from leanfit.workflows.export import export_hf
from leanfit.workflows.model_io import save
from leanfit.workflows.predict import evaluate_file, load, predict_file

BERT = {"name": "minilm-bbc", "n_train": 48, "n_validation": 16, "n_test": 16, "max_length": 32}
TEXTS = ["Shares fell sharply as the bank cut its forecast", "The striker scored twice in the final",
         "A new phone with a faster chip"]


def fresh(script: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                         timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def trained(task, adapter, compress=()):
    r, run = train_recipe(Recipe.from_dict({"task": task, "adapter": adapter, "compress": list(compress),
                                            "optimizer": {"name": "adamw", "lr": 1e-3},
                                            "schedule": {"epochs": 1, "batch_size": 16}}))
    return r, run


def in_process_logits(run, texts):
    from leanfit.tasks.text import _tokenizer

    tok = _tokenizer(run.task.meta["model_dir"])
    enc = tok(texts, padding="longest", truncation=True, max_length=32, return_tensors="pt")
    model = run.adapter.merge(run.model) if getattr(run.adapter, "mergeable", False) else run.model
    model.eval()
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])


@pytest.mark.parametrize("adapter", [{"name": "lora", "r": 4}, "lora_xs", "ia3", "full"])
def test_text_classifier_saves_loads_predicts_and_exports_with_parity(tmp_path, adapter):
    r, run = trained(BERT, adapter)
    ref = in_process_logits(run, TEXTS)
    folder = save(tmp_path / "m", run.model, run.task, r, run.adapter, r.recipe)
    manifest = json.loads((folder / "leanfit.json").read_text())
    assert manifest["test"] == r.test_metrics and manifest["labels"] == run.task.meta["labels"]
    assert "validation" in (folder / "README.md").read_text()
    p = load(folder)
    assert torch.allclose(p.logits(TEXTS), ref, atol=1e-5)
    preds = p.predict(TEXTS)
    assert [x["label"] for x in preds] == [p.labels[i] for i in ref.argmax(-1).tolist()]
    out = export_hf(folder, tmp_path / "hf")
    got = fresh(f"""
        import json
        from sentence_transformers import SentenceTransformer
        m = SentenceTransformer({str(out)!r}, device="cpu", local_files_only=True)
        print(json.dumps(m.encode({TEXTS!r}, convert_to_tensor=True).tolist()))
    """)
    assert torch.allclose(torch.tensor(got), ref, atol=1e-5)


def test_predict_and_evaluate_files(tmp_path):
    r, run = trained(BERT, "head_only")
    folder = save(tmp_path / "m", run.model, run.task, r, run.adapter, r.recipe)
    p = load(folder)
    f = tmp_path / "in.csv"
    f.write_text("text,label\n" + "".join(f"\"{t}\",{lab}\n" for t, lab in zip(TEXTS, ["business", "sports", "tech"])))
    assert predict_file(p, f, "text", tmp_path / "out.csv") == 3
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("text,label,p_business") and len(lines) == 4
    ev = evaluate_file(p, f, "text", "label")
    assert set(ev.metrics) == {"accuracy", "eval_loss", "macro_f1"} and len(ev.details["confusion"]) == 5


LM = {"name": "lm-arithmetic", "model": "tiny", "n_train": 32, "n_validation": 8, "n_test": 8}


@pytest.mark.parametrize("adapter, compress", [({"name": "lora", "r": 4}, ()), ("full", ()),
                                               ("full", [{"name": "gptq", "bits": 4}])])
def test_lm_saves_loads_and_exports_to_automodelforcausallm(tmp_path, adapter, compress):
    r, run = trained(LM, adapter, compress)
    ids = torch.tensor([[13, 20, 21, 22, 23, 24, 25]])
    model = run.adapter.merge(run.model) if getattr(run.adapter, "mergeable", False) else run.model
    model.eval()
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    folder = save(tmp_path / "m", run.model, run.task, r, run.adapter, r.recipe)
    saved = load(folder)
    with torch.no_grad():
        assert torch.allclose(saved.saved.model(input_ids=ids).logits, ref, atol=1e-5)
    if compress:  # 4-bit codes on disk: the file is smaller than fp32 weights
        assert (folder / "model.safetensors").stat().st_size < 0.5 * 4 * r.costs["total_params"]
    out = export_hf(folder, tmp_path / "hf")
    got = fresh(f"""
        import json, torch
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained({str(out)!r}, attn_implementation="eager").eval()
        with torch.no_grad():
            print(json.dumps(m(input_ids=torch.tensor({ids.tolist()!r})).logits.tolist()))
    """)
    assert torch.allclose(torch.tensor(got), ref, atol=1e-5)
    assert "generation" in saved.predict(["12+34="])[0]


def test_int8_lm_saves_dequantized_and_loads(tmp_path):
    """Dynamically int8-quantized Linear layers are written as their dequantized weights only: their output
    ``scale`` / ``zero_point`` entries used to be written too, so loading the folder failed ("unexpected keys")."""
    r, run = trained(LM, "full", ["int8"])
    ids = torch.tensor([[13, 20, 21, 22, 23, 24, 25]])
    with torch.no_grad():
        ref = run.model.eval()(input_ids=ids).logits
    folder = save(tmp_path / "m", run.model, run.task, r, run.adapter, r.recipe)
    with torch.no_grad():
        got = load(folder).saved.model(input_ids=ids).logits
    # float weights = the int8 codes × scale; the int8 model also quantizes activations at run time
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()


def test_merged_text_classifiers_save_a_folder_that_loads_and_exports_with_parity(tmp_path):
    """Parity after merging (issue 15): two saved MiniLM fine-tunes of one task, averaged (`linear`, heads
    included) into one folder by ``save:``; the folder's logits are the merged weights' logits, and its
    sentence-transformers export gives them too, in a fresh process."""
    from safetensors.torch import load_file

    from leanfit.workflows.merge import run_merge

    folders = []
    for i, adapter in enumerate([{"name": "lora", "r": 4}, "head_only"]):
        r, run = trained(BERT, adapter)
        folders.append(str(save(tmp_path / f"m{i}", run.model, run.task, r, run.adapter, r.recipe)))
    out = run_merge({"method": "linear", "models": folders, "output": str(tmp_path / "avg.safetensors"),
                     "save": str(tmp_path / "avg")})
    assert out["save"] == [str(tmp_path / "avg")] and not out["per_task_heads"]
    ref = run.task.build_model(0)
    ref.load_state_dict(load_file(str(tmp_path / "avg.safetensors")))
    ref_run = type("R", (), {"task": run.task, "model": ref, "adapter": None})
    want = in_process_logits(ref_run, TEXTS)
    p = load(out["save"][0])
    assert torch.allclose(p.logits(TEXTS), want, atol=1e-5)
    assert p.saved.manifest["test"] == {"accuracy": out["models"][0]["merged_accuracy"]}
    hf = export_hf(out["save"][0], tmp_path / "hf")
    got = fresh(f"""
        import json
        from sentence_transformers import SentenceTransformer
        m = SentenceTransformer({str(hf)!r}, device="cpu", local_files_only=True)
        print(json.dumps(m.encode({TEXTS!r}, convert_to_tensor=True).tolist()))
    """)
    assert torch.allclose(torch.tensor(got), want, atol=1e-5)
