import json
import subprocess
import sys

import pytest
import yaml

from leanfit import Recipe
from leanfit.engine.errors import ConfigError, UnknownNameError

YAML = """
task: digits-mlp
adapter: {name: lora, r: 4, alpha: 8}
optimizer: {name: adamw, lr: 0.003}
schedule: {epochs: 2, batch_size: 64, lr_schedule: cosine, warmup_ratio: 0.1}
seed: 3
"""


def test_yaml_round_trip_is_exact(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(YAML)
    r = Recipe.load(p)
    d = r.to_dict()
    assert Recipe.from_dict(d) == r
    assert Recipe.from_dict(yaml.safe_load(yaml.safe_dump(d))) == r
    assert Recipe.from_dict(json.loads(json.dumps(d))) == r
    assert d["adapter"] == {"name": "lora", "r": 4, "alpha": 8}
    assert d["schedule"] == {"epochs": 2, "batch_size": 64, "lr_schedule": "cosine", "warmup_ratio": 0.1}


def test_id_is_stable_across_processes_and_sensitive_to_content(tmp_path):
    r = Recipe.from_dict(yaml.safe_load(YAML))
    code = f"import yaml; from leanfit import Recipe; print(Recipe.from_dict(yaml.safe_load({YAML!r})).id)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == r.id and len(r.id) == 12
    assert r.replace(seed=4).id != r.id
    assert r.replace(name="pretty").id == r.id  # the label is not part of the identity
    # key order in the file does not matter
    d = yaml.safe_load(YAML)
    assert Recipe.from_dict(dict(reversed(list(d.items())))).id == r.id


@pytest.mark.parametrize("change, message", [
    ({"schedule": {"epochs": 0}}, r"schedule.epochs must be an integer ≥ 1, but got 0"),
    ({"schedule": {"lr_schedule": "cosin"}}, r"schedule.lr_schedule must be one of .*but got 'cosin'"),
    ({"schedule": {"epoch": 2}}, r"schedule: unknown key\(s\) 'epoch'.*Did you mean 'epochs'"),
    ({"seed": -1}, r"seed must be an integer ≥ 0, but got -1"),
    ({"adapter": {"name": "lora", "r": -2}}, r"adapters.lora: r must be an integer ≥ 1, but got -2"),
    ({"optimizer": {"name": "adamw", "lr": 0}}, r"optim.adamw: lr must be > 0, but got 0"),
    ({"adapters": "lora"}, r"recipe: unknown key\(s\) 'adapters'.*Valid keys: adapter, "),
    ({"adapter": 5}, r"adapter must be a method name or a mapping with a 'name' key, but got 5"),
])
def test_bad_values_name_field_value_and_rule(change, message):
    d = yaml.safe_load(YAML)
    d.update(change)
    with pytest.raises(ConfigError, match=message):
        Recipe.from_dict(d)


def test_unknown_names_list_close_matches():
    d = yaml.safe_load(YAML)
    with pytest.raises(UnknownNameError, match="Did you mean 'adamw'"):
        Recipe.from_dict({**d, "optimizer": "adamww"})
    with pytest.raises(UnknownNameError, match="unknown task 'digits-mpl'. Did you mean 'digits-mlp'"):
        Recipe.from_dict({**d, "task": "digits-mpl"})


def test_missing_task_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="'task' is required"):
        Recipe.from_dict({"adapter": "full"})
    with pytest.raises(ConfigError, match="does not exist"):
        Recipe.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, but got list"):
        Recipe.load(bad)


def test_yaml_is_data_not_code(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("task: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Recipe.load(p)
