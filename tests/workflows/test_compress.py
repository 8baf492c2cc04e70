"""`leanfit compress SPEC`: trains, compresses, reports, saves int8 as int8; and loads a checkpoint instead."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from leanfit.cli import _load_command_modules, app
from leanfit.engine.errors import ConfigError
from leanfit.workflows.compress import run_compress

SPEC = {"task": {"name": "mnist1d-cnn", "num_samples": 500}, "adapter": "full",
        "optimizer": {"name": "adamw", "lr": 3e-3}, "schedule": {"epochs": 2, "batch_size": 64},
        "steps": [{"name": "svd", "energy": 0.6}, {"name": "int8"}], "latency": {"rounds": 3}}


def test_cli_compress_writes_report_and_int8_file(tmp_path):
    from safetensors.torch import load_file

    spec = tmp_path / "compress.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    _load_command_modules()
    res = CliRunner().invoke(app, ["compress", str(spec), "--json", str(tmp_path / "r.json"),
                                   "--output", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output
    assert "compressed" in res.output and "ratio" in res.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert [s["method"] for s in r["steps"]] == ["svd", "int8"]
    assert r["compressed"]["params"] < r["original"]["params"]
    assert r["ratios"]["file_bytes"] == r["compressed"]["file_bytes"] / r["original"]["file_bytes"] < 0.5
    assert set(r["latency_ms"]) == {"original", "compressed"}
    sd = load_file(tmp_path / "m.safetensors")
    assert any(v.dtype == torch.int8 for v in sd.values()) and sd["fc.down.weight_int8"].dtype == torch.int8


def test_checkpoint_instead_of_training(tmp_path):
    from safetensors.torch import save_file

    from leanfit.engine.task import build_task

    t = build_task("mnist1d-cnn", num_samples=500)
    m = t.build_model(3)
    save_file(m.state_dict(), tmp_path / "ck.safetensors")
    r = run_compress({**SPEC, "checkpoint": str(tmp_path / "ck.safetensors"), "steps": [{"name": "magnitude"}]})
    assert r["ratios"]["nonzeros"] < 0.6 and r["original"]["params"] == sum(p.numel() for p in m.parameters())


def test_bad_specs():
    with pytest.raises(ConfigError, match="steps must be a non-empty list"):
        run_compress({k: v for k, v in SPEC.items() if k != "steps"})
    from leanfit.engine.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="magnitude"):
        run_compress({**SPEC, "steps": [{"name": "magnitud"}]})


def test_a_saved_run_folder_in_and_a_model_folder_out(tmp_path):
    """`leanfit run --save` → compress (task from the folder's manifest, no retraining) → `--save` a folder whose
    loaded model is the compressed one: its test accuracy is the one compress reported."""
    from leanfit import Recipe
    from leanfit.engine.run import train_recipe
    from leanfit.methods.compress._common import accuracy
    from leanfit.workflows.model_io import load, save

    rec = {k: SPEC[k] for k in ("task", "adapter", "optimizer", "schedule")}
    result, run = train_recipe(Recipe.from_dict(rec))
    trained = save(tmp_path / "trained", run.model, run.task, result, run.adapter, result.recipe)
    r = run_compress({"checkpoint": str(trained), "steps": [{"name": "gptq", "bits": 4, "n_calib": 64}],
                      "latency": {"rounds": 1}, "save": str(tmp_path / "small")})
    assert r["task"] == run.task.name
    assert r["original"]["test_accuracy"] == pytest.approx(result.test_metrics["accuracy"])  # the saved model
    small = load(tmp_path / "small")
    assert small.manifest["test"]["accuracy"] == r["compressed"]["test_accuracy"]
    assert small.manifest["quantized"], "GPTQ codes are stored packed"
    assert accuracy(run.task, small.model, "test") == pytest.approx(r["compressed"]["test_accuracy"])
    assert r["compressed"]["test_accuracy"] != r["original"]["test_accuracy"] or \
        any(not torch.equal(a, b) for a, b in zip(small.model.state_dict().values(), run.model.state_dict().values()))
