"""Weight files given to compress, merge and barrier (issue 14): a missing, empty, truncated or corrupt
safetensors file is one named error (exit 2), found before any training, never a traceback."""
import os

import pytest
import torch
import yaml
from safetensors.torch import save_file

from leanfit.cli import run_cli
from leanfit.engine.errors import ConfigError, DataError
from leanfit.workflows.weights import read_safetensors


@pytest.fixture
def files(tmp_path):
    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "ok.safetensors"))
    whole = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(300))
    return tmp_path


@pytest.mark.parametrize("name, why", [("empty", "header too small"), ("cut", "incomplete metadata"),
                                       ("junk", "header")])
def test_bad_files_are_named(files, name, why):
    with pytest.raises(DataError, match=rf"checkpoint must be a complete safetensors file, but .*{name}.safetensors"
                                        rf"' \([\d,]+ bytes\) cannot be read: .*{why}.*Fix: save it again"):
        read_safetensors(files / f"{name}.safetensors", "checkpoint")
    with pytest.raises(ConfigError, match=r"is a directory"):
        read_safetensors(files, "checkpoint")
    assert set(read_safetensors(files / "ok.safetensors", "checkpoint")) == {"w"}


def _run(capsys, *args):
    code = run_cli(list(args))
    return code, capsys.readouterr().err


def test_compress_merge_and_barrier_exit_2_on_a_cut_file(files, capsys):
    cut = str(files / "cut.safetensors")
    spec = files / "compress.yaml"
    spec.write_text(yaml.safe_dump({"task": "digits-mlp", "steps": [{"name": "magnitude", "sparsity": 0.5}],
                                    "checkpoint": cut}))
    code, err = _run(capsys, "compress", str(spec))
    assert code == 2 and "error: checkpoint must be a complete safetensors file" in err and "Traceback" not in err
    merge = files / "merge.yaml"
    merge.write_text(yaml.safe_dump({"method": "linear", "task": "digits-mlp", "models": [cut, cut]}))
    code, err = _run(capsys, "merge", str(merge))
    assert code == 2 and "models[0].checkpoint must be a complete safetensors file" in err
    code, err = _run(capsys, "barrier", cut, str(files / "empty.safetensors"), "--task", "digits-mlp")
    assert code == 2 and "error: A must be a complete safetensors file" in err
