import copy
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def storage_url(tmp_path):
    return f"sqlite:///{tmp_path / 'leanfit.db'}"


TINY_SPACE = {
    "task": "digits-mlp",
    "schedule": {"epochs": 1, "batch_size": 128, "eval_every": 4},
    "adapter": {"lora": {"r": {"int": [2, 8]}}, "head_only": {}, "full": {}},
    "optimizer": {"choices": ["adamw", "lion"], "params": {"lr": {"log": [1.0e-4, 1.0e-2]}}},
}


@pytest.fixture
def tiny_space():
    return copy.deepcopy(TINY_SPACE)
