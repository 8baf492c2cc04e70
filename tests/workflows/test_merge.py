"""`leanfit merge` / `leanfit barrier` end to end (in-process CliRunner, tiny digits MLPs) and their errors."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import typer

from leanfit.cli import merge as merge_cli
from leanfit.engine.errors import ConfigError
from leanfit.workflows.merge import run_barrier, run_merge
from leanfit.engine.task import build_task

app = typer.Typer()  # only our commands, so the test does not depend on other modules' registration
merge_cli.register(app)

TP = {"hidden": 16, "n_train": 300}


def fit(task, model, seed, steps=60):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, task.n_train, (64,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(task.train["x"][idx]), task.train["labels"][idx]).backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("merge")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: extra threads only add contention on a loaded 2-core machine
    task = build_task("digits-mlp", **TP)
    base = fit(task, task.build_model(0), 0, steps=20)
    save_file(base.state_dict(), str(d / "base.safetensors"))
    for i in (1, 2):
        m = task.build_model(0)
        m.load_state_dict(base.state_dict())
        save_file(fit(task, m, i).state_dict(), str(d / f"ft{i}.safetensors"))
    save_file(fit(task, task.build_model(7), 7).state_dict(), str(d / "other.safetensors"))
    torch.set_num_threads(threads)
    return d


def spec(d, **kw):
    s = {"method": "ties", "params": {"density": 0.5}, "base": str(d / "base.safetensors"), "task": "digits-mlp",
         "task_params": TP, "models": [str(d / "ft1.safetensors"), str(d / "ft2.safetensors")]}
    s.update(kw)
    return s


def test_merge_cli_writes_weights_and_report(ckpts, tmp_path):
    import yaml

    y = tmp_path / "merge.yaml"
    y.write_text(yaml.safe_dump(spec(ckpts, output=str(tmp_path / "m.safetensors"))))
    r = CliRunner().invoke(app, ["merge", str(y), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["models"]) == 2 and (tmp_path / "m.safetensors").exists()
    for row in res["models"]:
        assert row["individual_accuracy"] > 0.5 and 0 < row["merged_accuracy"] <= 1


def test_merge_fisher_and_linear_run(ckpts):
    for method in ("fisher", "linear"):
        res = run_merge(spec(ckpts, method=method, params={"n_samples": 16} if method == "fisher" else {}))
        assert all(r["merged_accuracy"] > 0.3 for r in res["models"])


@pytest.mark.parametrize("change,match", [
    ({"method": "tiez"}, "Did you mean 'ties'"),
    ({"base": None}, "base must be given"),
    ({"models": ["nope.safetensors", "x.safetensors"]}, "does not exist"),
    ({"params": {"density": 2}}, "density must be a fraction"),
    ({"colour": 1}, r"merge.yaml: unknown key\(s\) 'colour'"),
    ({"task_params": {"hidden": 32, "n_train": 300}}, "must match task"),
])
def test_merge_bad_inputs(ckpts, change, match):
    with pytest.raises(Exception, match=match):
        run_merge(spec(ckpts, **change))


def test_adapter_checkpoint_is_rejected(ckpts, tmp_path):
    p = tmp_path / "lora.safetensors"
    save_file({"fc1.lora_A.weight": torch.zeros(2, 2)}, str(p))
    with pytest.raises(ConfigError, match="adapter checkpoint"):
        run_merge(spec(ckpts, models=[str(p), str(ckpts / "ft1.safetensors")]))


def test_barrier_command(ckpts, tmp_path):
    png = tmp_path / "c.png"
    r = CliRunner().invoke(app, ["barrier", str(ckpts / "ft1.safetensors"), str(ckpts / "other.safetensors"),
                                 "--task", "digits-mlp", "--task-param", "hidden=16", "--task-param", "n_train=300",
                                 "--points", "5", "--png", str(png)])
    assert r.exit_code == 0, r.output
    assert "aligned" in r.output and png.stat().st_size > 1000
    res = run_barrier(str(ckpts / "ft1.safetensors"), str(ckpts / "other.safetensors"), "digits-mlp", TP, 5)
    # endpoints: aligned B computes the same function as B
    assert res["aligned"]["curve"]["loss"][-1] == pytest.approx(res["naive"]["curve"]["loss"][-1], abs=1e-5)
    with pytest.raises(ConfigError, match="odd integer"):
        run_barrier(str(ckpts / "ft1.safetensors"), str(ckpts / "other.safetensors"), "digits-mlp", TP, 4)
