import yaml
from typer.testing import CliRunner

from leanfit.cli import _load_command_modules, app
from leanfit.engine.errors import UnknownNameError

_load_command_modules() if "search" not in {c.name for c in app.registered_commands} else None


def test_search_then_report_across_two_tasks(tmp_path, tiny_space):
    space = tmp_path / "space.yaml"
    tiny_space["adapter"] = {"head_only": {}, "full": {}}
    space.write_text(yaml.safe_dump(tiny_space))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    for task in ("digits-mlp", "mnist1d-cnn"):
        res = runner.invoke(app, ["search", str(space), "--task", task, "-n", "3", "--storage", url,
                                  "--objectives", "accuracy,trainable_params", "--sampler", "random"])
        assert res.exit_code == 0, res.output + repr(res.exception)
        assert f"study 'space-{task}'" in res.output and "Pareto set of space-" in res.output
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--storage", url, "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Pareto set on digits-mlp" in res.output and "performance profiles" in res.output
    for suffix in (".html", "-digits-mlp.png", "-mnist1d-cnn.png", "-profiles.png"):
        assert (tmp_path / f"rep{suffix}").stat().st_size > 1000


def test_search_rejects_unknown_names_before_training(tmp_path, tiny_space):
    tiny_space["adapter"] = {"loraa": {}}
    space = tmp_path / "bad.yaml"
    space.write_text(yaml.safe_dump(tiny_space))
    res = CliRunner().invoke(app, ["search", str(space), "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert isinstance(res.exception, UnknownNameError) and "Did you mean 'lora'" in str(res.exception)
    assert not (tmp_path / "x.db").exists() or "Trial" not in res.output


def test_search_save_best_retrains_the_validation_best_and_saves_it(tmp_path, tiny_space):
    """--save-best: the saved folder holds the complete trial with the best validation accuracy, retrained to the
    same metrics; a non-empty folder is refused before any trial trains."""
    import json

    from leanfit.engine.store import load_runs

    space = tmp_path / "space.yaml"
    tiny_space["adapter"] = {"head_only": {}, "full": {}}
    space.write_text(yaml.safe_dump(tiny_space))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    res = runner.invoke(app, ["search", str(space), "-n", "3", "--storage", url, "--save-best", str(tmp_path / "busy")])
    assert res.exit_code != 0 and "is not empty" in str(res.exception) + res.output
    assert load_runs(url) == []
    res = runner.invoke(app, ["search", str(space), "-n", "3", "--storage", url, "--sampler", "random",
                              "--no-stopper", "--save-best", str(tmp_path / "best")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    runs = [r for r in load_runs(url) if r.status == "complete"]
    top = max(r.metrics["accuracy"] for r in runs)
    manifest = json.loads((tmp_path / "best" / "leanfit.json").read_text())
    best = next(r for r in runs if r.recipe_id == manifest["recipe_id"])  # ties: broken by the next objective
    assert best.metrics["accuracy"] == top == manifest["validation"]["accuracy"]
    assert manifest["test"] == best.test_metrics and "warning" not in res.output
