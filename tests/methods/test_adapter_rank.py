"""A LoRA rank above a targeted layer's width is an error with the numbers (issue 14: r far above the width
trained 449k parameters on a 26k-parameter MLP, silently)."""
import pytest

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError
from leanfit.engine.task import build_task


@pytest.mark.parametrize("name", ["lora", "dora", "loha"])
def test_rank_above_the_layer_width_is_refused(name):
    task = build_task("digits-mlp")  # fc1 64→128, fc2 128→128: rank ≤ 64 fits every targeted layer
    registry.get("adapters", name).build({"r": 64}).apply(task.build_model(0), task)
    with pytest.raises(ConfigError, match=rf"adapters.{name}: r must be ≤ min\(in, out\) of every targeted layer .* "
                                          r"got r=65 with 1 narrower layer\(s\): fc1 \(64→128\)\. .*Fix: use r ≤ 64"):
        registry.get("adapters", name).build({"r": 65}).apply(task.build_model(0), task)


def test_the_error_counts_the_parameters():
    task = build_task("digits-mlp")
    with pytest.raises(ConfigError, match=r"r=512 trains 98,304 adapter parameters vs 8,192 for those layers"):
        registry.get("adapters", "lora").build({"r": 512, "target_modules": ["fc1"]}).apply(task.build_model(0), task)
