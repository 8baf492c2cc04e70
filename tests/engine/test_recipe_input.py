"""Reading recipes (issue 14): every malformed file is a named ConfigError, numbers are numbers (``1e-3`` yes,
``true`` and ``.inf`` no), and a recipe never imports code without the explicit opt-in."""
import subprocess
import sys

import pytest

from leanfit.engine import registry
from leanfit.engine.errors import ALLOW_CODE_ENV, ConfigError
from leanfit.engine.recipe import Recipe, load_mapping


def _load(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return Recipe.load(p)


def test_malformed_json_recipe_names_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"r.json: not valid JSON: Expecting .* at line 2, column 1"):
        _load(tmp_path, '{"task": "digits-mlp",\n}', "r.json")


def test_folder_and_non_utf8_recipe(tmp_path):
    with pytest.raises(ConfigError, match=r"must be a YAML or JSON file, but it is a directory"):
        Recipe.load(tmp_path)
    with pytest.raises(ConfigError, match=r"must be UTF-8 text, but byte 0xe9 at offset"):
        _load(tmp_path, "task: digits-mlp\nname: caf\xe9\n".encode("latin-1"))


def test_yaml_exponent_floats_are_numbers_everywhere(tmp_path):
    """YAML 1.1 reads 1e-3 as the string '1e-3' (old code: "'>' not supported between 'str' and 'int'")."""
    r = _load(tmp_path, "task: digits-mlp\noptimizer: {name: adamw, lr: 1e-3, eps: 1E-8}\n"
                        "schedule: {max_flops: 2e+9}\n")
    assert r.optimizer.kwargs["lr"] == 0.001 and r.optimizer.kwargs["eps"] == 1e-8
    assert r.schedule.max_flops == 2e9
    assert load_mapping(_write(tmp_path, "s.yaml", "a: [1e5, -2E-2, '1e-3', 1_000, 0x10]"))["a"] == [
        1e5, -0.02, "1e-3", 1000, 16]


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("text, match", [
    ("optimizer: {name: adamw, lr: .inf}", r"optimizer.lr must be a finite number, but got inf"),
    ("optimizer: {name: adamw, lr: .nan}", r"optimizer.lr must be a finite number, but got nan"),
    ("optimizer: {name: adamw, lr: true}", r"optim.adamw: lr must be a number, but got True \(booleans are not numbers\)"),
    ("optimizer: {name: adan, lr: true}", r"optim.adan: lr must be a number, but got True"),
    ("optimizer: {name: adamw, lr: abc}", r"optim.adamw: lr must be a number, but got 'abc'"),
    ("schedule: {epochs: true}", r"schedule.epochs must be a number, not a boolean, but got True"),
    ("seed: true", r"seed must be an integer ≥ 0, but got True"),
    ("adapter: {name: lora, 1: 2}", r"keys must be names \(strings\), but got 1 under adapter"),
    ("optimizer: {name: lion, betas: [1.5, 0.9]}", r"optim.lion: betas must be 2 numbers in \[0, 1\)"),
    ("optimizer: {name: adabelief, eps: -1.0}", r"optim.adabelief: the optimizer rejects these settings: eps"),
    ("task: {name: text-file, train: x.csv, bogus: 1}", r"tasks.text-file: unknown parameter\(s\) 'bogus'\. "
                                                        r"Valid parameters: eval, label_column, max_length"),
])
def test_bad_values_are_named(tmp_path, text, match):
    body = text if text.startswith("task") else "task: digits-mlp\n" + text
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, body + "\n")


def test_json_nan_and_yaml_alias_bomb(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer.lr must be a finite number, but got nan"):
        _load(tmp_path, '{"task": "digits-mlp", "optimizer": {"name": "adamw", "lr": NaN}}', "r.json")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    with pytest.raises(ConfigError, match=r"must hold at most 100,000 values"):
        _load(tmp_path, bomb)


def test_pnm_keeps_its_documented_beta_of_one():
    assert registry.get("optim", "pnm").make_config({"betas": [0.9, 1.0]}).betas == [0.9, 1.0]


def test_a_recipe_cannot_import_code_without_the_opt_in(tmp_path, monkeypatch):
    """Old code: `task: {name: "os:system", command: ...}` ran the command."""
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match=r"task 'os:system' names Python code .* Fix: if you trust the file, "
                                          r"rerun with --allow-code"):
        Recipe.from_dict({"task": {"name": "os:system", "command": f"touch {marker}"}})
    assert not marker.exists()
    (tmp_path / "mytasks.py").write_text("from leanfit.engine.task import build_task\n"
                                         "def make():\n    return build_task('digits-mlp')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_CODE_ENV, "1")
    assert Recipe.from_dict({"task": "mytasks:make"}).task.name == "mytasks:make"


def test_adamw_recipe_validates_without_importing_the_optimizer_library():
    """pytorch-optimizer (and transformers, which it imports) loads only for a library optimizer's name."""
    code = ("import sys; from leanfit.engine.recipe import Recipe; "
            "Recipe.from_dict({'task': 'digits-mlp', 'optimizer': {'name': 'adamw', 'lr': 1e-3}}); "
            "print(sorted(m for m in ('pytorch_optimizer', 'transformers', 'peft') if m in sys.modules)); "
            "Recipe.from_dict({'task': 'digits-mlp', 'optimizer': 'lion'}); print('pytorch_optimizer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
