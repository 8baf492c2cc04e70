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
