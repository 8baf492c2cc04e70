import pytest

from leanfit.engine.errors import ConfigError, UnknownNameError
from leanfit.engine.result import RunResult
from leanfit.study import objectives as obj


def _res(acc=0.9, trainable=100, total=10_000, mem=5e6):
    return RunResult(recipe={}, recipe_id="x", task="t", metrics={"accuracy": acc},
                     costs={"trainable_params": trainable, "total_params": total, "train_memory_bytes": mem,
                            "train_flops": 1e9})


def test_objectives_by_name_and_directions():
    names = obj.parse_objectives("accuracy, flops,trainable_params")
    assert names == ("accuracy", "train_flops", "trainable_params")
    assert obj.directions(names) == ["maximize", "minimize", "minimize"]
    assert obj.objective_values(_res(), names) == [0.9, 1e9, 100.0]
    with pytest.raises(UnknownNameError, match=r"unknown objective 'acuracy'.*Did you mean 'accuracy'"):
        obj.parse_objectives("acuracy")
    with pytest.raises(ConfigError, match="listed twice"):
        obj.parse_objectives("accuracy,accuracy")


def test_budgets_are_used_minus_limit():
    b = obj.parse_budgets(["trainable_fraction<=1%", "train_memory_bytes<=4e6"])
    assert b == {"trainable_fraction": pytest.approx(0.01), "train_memory_bytes": 4e6}
    # 100/10000 = 1% exactly → feasible (0); 5e6 - 4e6 > 0 → infeasible
    assert obj.constraint_values(_res(), b) == [pytest.approx(0.0), pytest.approx(1e6)]
    assert obj.parse_budgets({"memory": "2.5e6"}) == {"train_memory_bytes": 2.5e6}
    with pytest.raises(ConfigError, match=r"must look like NAME<=LIMIT"):
        obj.parse_budgets(["trainable_fraction=1%"])
    with pytest.raises(UnknownNameError, match=r"unknown budget 'accuracy'"):
        obj.parse_budgets({"accuracy": 0.5})
    with pytest.raises(ConfigError, match=r"budgets.train_flops must be a number or a percentage"):
        obj.parse_budgets({"train_flops": "lots"})
