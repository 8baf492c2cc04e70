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


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _test_acc_loss(sd):
    """Accuracy and mean cross-entropy of a digits MLP with these weights on the test split, computed here."""
    task = build_task("digits-mlp", **TP)
    model = task.build_model(0)
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        logits = model(task.test["x"])
    y = task.test["labels"]
    return float((logits.argmax(-1) == y).float().mean()), float(torch.nn.functional.cross_entropy(logits, y))


def test_merge_cli_writes_weights_and_report(ckpts, tmp_path):
    """The written weights are TIES(base, ft1, ft2; density 0.5) of the files given, and every reported accuracy is
    the test accuracy of those weights / of each fine-tune, recomputed here."""
    import yaml

    from leanfit.methods.merge.arithmetic import ties_merge

    y = tmp_path / "merge.yaml"
    y.write_text(yaml.safe_dump(spec(ckpts, output=str(tmp_path / "m.safetensors"))))
    r = CliRunner().invoke(app, ["merge", str(y), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["models"]) == 2 and res["method"] == "ties" and res["params"] == {"density": 0.5}
    written = _load(tmp_path / "m.safetensors")
    fts = [_load(ckpts / "ft1.safetensors"), _load(ckpts / "ft2.safetensors")]
    expect = ties_merge(_load(ckpts / "base.safetensors"), fts, density=0.5)
    assert set(written) == set(expect) and all(torch.equal(written[k], expect[k]) for k in expect)
    merged_acc, merged_loss = _test_acc_loss(written)
    for row, ft in zip(res["models"], fts):
        ind_acc = _test_acc_loss(ft)[0]
        assert row["individual_accuracy"] == pytest.approx(ind_acc) and ind_acc > 0.9
        assert row["merged_accuracy"] == pytest.approx(merged_acc) and row["merged_loss"] == pytest.approx(merged_loss, rel=1e-5)
        assert row["normalized"] == pytest.approx(merged_acc / ind_acc)
    # two fine-tunes of one base merge well (TIES paper's setting): within 5 points of the weaker model (0.936 vs 0.95)
    assert merged_acc >= min(r["individual_accuracy"] for r in res["models"]) - 0.05


def test_merge_fisher_and_linear_run(ckpts):
    fts = [_load(ckpts / "ft1.safetensors"), _load(ckpts / "ft2.safetensors")]
    res = {method: run_merge(spec(ckpts, method=method, params={"n_samples": 16} if method == "fisher" else {}))
           for method in ("fisher", "linear")}
    # linear: the uniform soup (ft1 + ft2) / 2, evaluated here
    soup_acc, soup_loss = _test_acc_loss({k: (fts[0][k] + fts[1][k]) / 2 for k in fts[0]})
    for row in res["linear"]["models"]:
        assert row["merged_accuracy"] == pytest.approx(soup_acc) and row["merged_loss"] == pytest.approx(soup_loss, rel=1e-5)
    for method, out in res.items():
        for row in out["models"]:  # both stay within 5 points of each fine-tune (0.953 / 0.955 vs 0.95 / 0.958)
            assert row["merged_accuracy"] >= row["individual_accuracy"] - 0.05, method
    # the Fisher weights change the result (Fisher-weighted average ≠ plain average unless all Fishers are equal)
    assert res["fisher"]["models"][0]["merged_loss"] != pytest.approx(soup_loss, rel=1e-4)


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
    # endpoints are A and B themselves (aligned B computes the same function as B), on the test split
    loss_a = _test_acc_loss(_load(ckpts / "ft1.safetensors"))[1]
    loss_b = _test_acc_loss(_load(ckpts / "other.safetensors"))[1]
    for kind in ("naive", "aligned"):
        curve = res[kind]["curve"]["loss"]
        assert len(curve) == 5 and curve[0] == pytest.approx(loss_a, rel=1e-5)
        assert curve[-1] == pytest.approx(loss_b, abs=1e-5)
    # Git Re-Basin's claim on independently trained MLPs: weight matching lowers the loss barrier (0.62 → 0.10 here)
    assert res["naive"]["loss_barrier"] > 0.3 and res["aligned"]["loss_barrier"] < 0.5 * res["naive"]["loss_barrier"]
    with pytest.raises(ConfigError, match="odd integer"):
        run_barrier(str(ckpts / "ft1.safetensors"), str(ckpts / "other.safetensors"), "digits-mlp", TP, 4)


def test_merge_cli_saves_a_model_folder_and_refuses_a_used_one_before_merging(ckpts, tmp_path):
    """``save:`` writes a model folder holding exactly the merged weights (loadable by leanfit.load); a non-empty
    folder is refused with a named error before anything is loaded or merged."""
    import yaml

    from leanfit.workflows.model_io import load

    y = tmp_path / "merge.yaml"
    y.write_text(yaml.safe_dump(spec(ckpts, output=str(tmp_path / "m.safetensors"), save=str(tmp_path / "m"))))
    r = CliRunner().invoke(app, ["merge", str(y)])
    assert r.exit_code == 0, r.output
    assert "merged model saved to" in r.output
    written, saved = _load(tmp_path / "m.safetensors"), load(tmp_path / "m").model.state_dict()
    assert set(saved) == set(written) and all(torch.equal(saved[k], written[k]) for k in written)
    used = tmp_path / "used"
    used.mkdir()
    (used / "x.txt").write_text("keep me")
    y.write_text(yaml.safe_dump(spec(ckpts, save=str(used))))
    r = CliRunner().invoke(app, ["merge", str(y)])
    # a ConfigError: `leanfit` turns it into one `error:` line and exit 2 (tests/cli/test_exit_codes.py)
    assert isinstance(r.exception, ConfigError) and "is not empty" in str(r.exception)
    assert (used / "x.txt").read_text() == "keep me"
