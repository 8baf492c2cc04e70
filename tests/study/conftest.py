import pytest

TINY = {
    "task": "digits-mlp",
    "schedule": {"epochs": 1, "batch_size": 128, "eval_every": 4},
    "adapter": {"lora": {"r": {"int": [2, 8]}}, "head_only": {}, "full": {}},
    "optimizer": {"choices": ["adamw", "lion"], "params": {"lr": {"log": [1.0e-4, 1.0e-2]}}},
}


@pytest.fixture
def tiny_space():
    import copy

    return copy.deepcopy(TINY)
