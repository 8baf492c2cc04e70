import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def storage_url(tmp_path):
    return f"sqlite:///{tmp_path / 'leanfit.db'}"
