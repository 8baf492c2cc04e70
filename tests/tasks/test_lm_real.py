"""The real SmolLM2-135M-Instruct (slow: `make test-all`): the converted GGUF answers a factual prompt, and a LoRA
fine-tune on lm-bbc-topic lowers the validation loss and saves/loads with identical generations."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_smollm2_loads_offline_and_answers():
    from leanfit.tasks.lm_models import load_model, load_tokenizer, smollm2_dir

    folder = smollm2_dir()
    tok, model = load_tokenizer(str(folder)), load_model(str(folder)).eval()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])


def test_lora_on_smollm2_lowers_validation_loss_and_saves(tmp_path):
    from leanfit import Recipe
    from leanfit.engine.run import train_recipe
    from leanfit.workflows.model_io import load, save

    r = Recipe.from_dict({"task": {"name": "lm-bbc-topic", "words": 8, "max_length": 40, "n_validation": 8,
                                   "n_test": 8},
                          "adapter": {"name": "lora", "r": 8}, "optimizer": {"name": "adamw", "lr": 2e-3},
                          "schedule": {"batch_size": 8, "max_steps": 8, "eval_every": 8}})
    result, run = train_recipe(r)
    assert result.status == "complete", result.error
    zero_shot = run.task.evaluate(run.task.build_model(0), "validation").metrics["eval_loss"]
    assert result.metrics["eval_loss"] < 0.5 * zero_shot  # completion loss: ~9.6 zero-shot (benchmarks/lm.py)
    folder = save(tmp_path / "m", run.model, run.task, result, run.adapter, result.recipe)
    again = run.task.evaluate(load(folder).model, "validation").metrics
    assert again["eval_loss"] == pytest.approx(result.metrics["eval_loss"], rel=1e-4)
    assert again["accuracy"] == result.metrics["accuracy"]
