import optuna
import pytest

from leanfit.engine.errors import ConfigError, UnknownNameError
from leanfit.engine.recipe import Recipe
from leanfit.study.space import Param, SearchSpace


def test_suggest_builds_valid_recipes_with_conditional_params(tiny_space):
    space = SearchSpace.from_dict(tiny_space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        t = study.ask()
        flat = space.suggest(t)
        r = space.recipe(flat)
        assert isinstance(r, Recipe) and r.task.name == "digits-mlp"
        assert r.adapter.name == flat["adapter"] and r.optimizer.name == flat["optimizer"]
        assert 1e-4 <= r.optimizer.kwargs["lr"] <= 1e-2
        if r.adapter.name == "lora":
            assert 2 <= r.adapter.kwargs["r"] <= 8 and t.params["adapter.lora.r"] == r.adapter.kwargs["r"]
        else:  # a conditional parameter is only asked when its method is chosen
            assert "adapter.lora.r" not in t.params and r.adapter.kwargs == {}
        assert r.schedule.epochs == 1 and r.schedule.eval_every == 4
        seen.add(r.adapter.name)
        study.tell(t, 0.0)
    assert seen == {"lora", "head_only", "full"}


def test_grid_enumerates_every_point_exactly_once(tiny_space):
    tiny_space["adapter"] = {"lora": {"r": [2, 4]}, "full": {}}
    tiny_space["optimizer"] = {"adamw": {"lr": {"log": [1e-4, 1e-2], "grid": [1e-3, 1e-2]}}, "lion": {"lr": 1e-4}}
    tiny_space["schedule"]["batch_size"] = {"choice": [64, 128]}
    space = SearchSpace.from_dict(tiny_space)
    grid = space.grid()
    # adapters: lora×2 + full = 3; optimizers: adamw×2 + lion = 3; batch sizes: 2
    assert len(grid) == 3 * 3 * 2
    ids = {space.recipe(p).id for p in grid}
    assert len(ids) == len(grid)


def test_default_grid_of_a_log_range_is_geometric():
    p = Param.parse({"log": [1e-4, 1e-2]}, "lr")
    assert p.grid_values() == pytest.approx([1e-4, 1e-3, 1e-2])
    assert Param.parse({"int": [2, 5]}, "r").grid_values() == [2, 3, 4, 5]


def test_unknown_method_lists_close_matches(tiny_space):
    tiny_space["optimizer"] = ["adamw", "lionn"]
    with pytest.raises(UnknownNameError, match=r"unknown optim method 'lionn'\. Did you mean 'lion'"):
        SearchSpace.from_dict(tiny_space)


def test_out_of_range_param_is_caught_by_the_method_config(tiny_space):
    tiny_space["adapter"] = {"lora": {"r": {"int": [0, 4]}}}
    with pytest.raises(ConfigError, match=r"adapters\.lora: r must be an integer ≥ 1, but got 0"):
        SearchSpace.from_dict(tiny_space)


def test_unknown_param_and_bad_specs(tiny_space):
    tiny_space["adapter"] = {"lora": {"rank": [2, 4]}}
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) 'rank'\. Valid parameters: .*r"):
        SearchSpace.from_dict(tiny_space)
    with pytest.raises(ConfigError, match=r"low < high"):
        Param.parse({"float": [1.0, 0.5]}, "x")
    with pytest.raises(ConfigError, match=r"low > 0 on a log scale"):
        Param.parse({"log": [0, 1]}, "x")
    with pytest.raises(ConfigError, match=r"exactly one of int/float/log/choice/value"):
        Param.parse({"int": [1, 2], "float": [1, 2]}, "x")
    with pytest.raises(ConfigError, match=r"search space: unknown key\(s\) 'optimiser'.*Did you mean 'optimizer'"):
        SearchSpace.from_dict({"task": "digits-mlp", "optimiser": ["adamw"]})
    with pytest.raises(ConfigError, match=r"schedule.epochs must be an integer ≥ 1, but got 0"):
        SearchSpace.from_dict({"task": "digits-mlp", "schedule": {"epochs": {"int": [0, 2]}}})


def test_none_is_only_for_optional_axes():
    with pytest.raises(ConfigError, match=r"'none' is only allowed on the optional axes"):
        SearchSpace.from_dict({"task": "digits-mlp", "adapter": {"none": {}, "full": {}}})


def test_float_with_log_flag_and_step():
    p = Param.parse({"float": [1e-3, 1e-1], "log": True}, "lr")
    assert p.kind == "float" and p.log
    study = optuna.create_study()
    t = study.ask()
    v = Param.parse({"int": [2, 16], "step": 2}, "r").suggest(t, "r")
    assert v % 2 == 0 and isinstance(t.distributions["r"], optuna.distributions.IntDistribution)


def test_optional_axis_none_means_no_method(tiny_space):
    tiny_space["data"] = {"none": {}}
    space = SearchSpace.from_dict(tiny_space)
    r = space.recipe(space.grid()[0])
    assert r.data is None and r.compress == ()
    tiny_space["compress"] = ["none", "no-such-pruner"]
    with pytest.raises(UnknownNameError, match=r"unknown compress method 'no-such-pruner'"):
        SearchSpace.from_dict(tiny_space)
