"""Property tests (issue 14): malformed recipes, search spaces and data files only ever produce a named error.

The CLI runs in-process (``run_cli``) with training and the study's workers replaced by stubs, so every example
exercises the whole path from the file to the point where work would start: loading, validation against the
registry, the storage, and the exit code. A valid input exits 0; anything else must exit 2 with an ``error:``
line and no traceback (exit 1 would be an internal error: a bug this test exists to find).
"""
import json
import tempfile
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from leanfit.cli import run_cli  # noqa: E402
from leanfit.engine.errors import ALLOW_CODE_ENV, DataError, MissingExtraError  # noqa: E402
from leanfit.engine.result import RunResult  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 40), 2 ** 40), st.floats(), st.text(max_size=10))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
# Values near the valid ones reach the checks behind the first: types, ranges, booleans, strings, tuples.
PLAUSIBLE = st.one_of(st.integers(-2, 70), st.floats(-1.5, 2.5), st.sampled_from(
    [0, 1, -1, 0.5, 1e-3, 1e9, True, False, None, "1e-3", "", "abc", [], {}, [0.9, 0.99], [1.5, 0.9], [1, 2, 3],
     ["fc1"], ["nosuch"], {"a": 1}, "/no/such/file.csv"]), VALUES)
AXES = {  # names (valid, near-valid, hostile) and parameter names per recipe field
    "task": (["digits-mlp", "mnist1d-cnn", "text-file", "os:system", "json:loads", "nosuch"],
             ["hidden", "depth", "n_train", "train", "eval", "text_column", "max_length", "share_layers", "bogus"]),
    "adapter": (["lora", "dora", "full", "head_only", "ssf", "vera", "bitfit", "nola", "Lora", "nosuch"],
                ["r", "alpha", "dropout", "target_modules", "use_dora", "options", "seed", "bogus"]),
    "optimizer": (["adamw", "sgd", "lion", "adan", "mezo", "frugal", "galore", "nosuch"],
                  ["lr", "betas", "weight_decay", "momentum", "eps", "rank", "rho", "bogus"]),
    "data": (["rs2", "random", "el2n", "class_balanced", "upweight", "none", "nosuch"],
             ["fraction", "temperature", "proxy_epochs", "bogus"]),
    "compress": (["magnitude", "gptq", "svd", "int8", "structured", "nosuch"],
                 ["sparsity", "bits", "ratio", "energy", "group_size", "bogus"]),
}


def _method(field: str) -> st.SearchStrategy:
    names, params = AXES[field]
    name = st.sampled_from([names[0]] * len(names) + names)  # half the time the first, valid name
    spec = st.fixed_dictionaries({"name": name}, optional={k: PLAUSIBLE for k in params})
    return st.one_of(name, spec, spec, spec, spec, PLAUSIBLE)  # mostly well-formed, some junk


SCHEDULE_KEYS = ("epochs", "batch_size", "max_steps", "max_flops", "lr_schedule", "warmup_ratio", "eval_every",
                 "eval_fraction", "grad_clip")
SCHEDULE = st.one_of(*[st.fixed_dictionaries({}, optional={k: PLAUSIBLE for k in SCHEDULE_KEYS})] * 3, VALUES)
RECIPE = st.fixed_dictionaries({"task": _method("task")}, optional={
    "adapter": _method("adapter"), "optimizer": _method("optimizer"), "data": _method("data"),
    "compress": st.one_of(_method("compress"), st.lists(_method("compress"), max_size=2)),
    "schedule": SCHEDULE, "seed": PLAUSIBLE, "name": PLAUSIBLE})
RECIPE_OR_JUNK = st.one_of(RECIPE, RECIPE, RECIPE, VALUES, RECIPE.flatmap(
    lambda r: st.dictionaries(st.text(max_size=6), VALUES, max_size=2).map(lambda extra: {**extra, **r})))
PARAM_SPEC = st.one_of(PLAUSIBLE, st.fixed_dictionaries({}, optional={
    k: st.one_of(st.lists(PLAUSIBLE, max_size=3), PLAUSIBLE) for k in ("int", "float", "log", "choice", "value",
                                                                        "step", "grid")}))


def _axis(field: str) -> st.SearchStrategy:
    names, params = AXES[field]
    methods = st.dictionaries(st.sampled_from(names), st.one_of(st.none(), st.dictionaries(
        st.sampled_from(params), PARAM_SPEC, max_size=2)), min_size=1, max_size=3)
    long_form = st.fixed_dictionaries({"choices": st.one_of(st.lists(st.sampled_from(names), max_size=3), methods)},
                                      optional={"params": st.dictionaries(st.sampled_from(params), PARAM_SPEC,
                                                                          max_size=2)})
    return st.one_of(st.sampled_from(names), st.lists(st.sampled_from(names), max_size=3), methods, long_form, VALUES)


SPACE = st.fixed_dictionaries({"task": _method("task")}, optional={
    "adapter": _axis("adapter"), "optimizer": _axis("optimizer"), "data": _axis("data"), "compress": _axis("compress"),
    "seed": PARAM_SPEC, "schedule": st.one_of(st.dictionaries(st.sampled_from(SCHEDULE_KEYS), PARAM_SPEC, max_size=3),
                                              VALUES),
    "objectives": st.one_of(st.sampled_from(["accuracy,train_flops", "flops", "accuracy,accuracy", "nosuch"]), VALUES),
    "budgets": st.one_of(st.sampled_from([{"trainable_fraction": "1%"}, ["flops<=1e9"], "x<=1"]), VALUES),
    "sampler": st.one_of(st.sampled_from(["tpe", "grid", "random", "nsga2", "nosuch"]), VALUES),
    "stopper": st.one_of(st.fixed_dictionaries({}, optional={k: PLAUSIBLE for k in (
        "resource", "min_resource", "reduction_factor", "min_trials", "metric")}), VALUES),
    "trials": PLAUSIBLE})


def _render(data, how: int) -> str:
    """The data as YAML (how 0, 2) or JSON (1, 3; NaN/Infinity as Python writes them), cut short for how ≥ 2."""
    text = json.dumps(data, default=str) if how % 2 else yaml.safe_dump(data, allow_unicode=True)
    return text[: len(text) // 2] if how >= 2 else text


@pytest.fixture(scope="module")
def stubs():
    """Training and the workers replaced for the whole module (hypothesis runs many examples in one test)."""
    import leanfit.engine.run
    import leanfit.study.runner

    mp = pytest.MonkeyPatch()

    def fake_run(recipe, task=None, callbacks=()):
        return RunResult(recipe=recipe.to_dict(), recipe_id=recipe.id, task=recipe.task.name,
                         metrics={"accuracy": 0.5}, costs={"train_flops": 1.0, "trainable_params": 1})

    mp.setattr(leanfit.engine.run, "run_recipe", fake_run)
    mp.setattr(leanfit.engine.run, "train_recipe", lambda *a, **k: (fake_run(*a, **k), None))
    mp.setattr(leanfit.study.runner, "drain", lambda *a, **k: 0)
    mp.delenv(ALLOW_CODE_ENV, raising=False)
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)
    mp.undo()


def _check(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err, err[-2000:]
    assert code in (0, 2), f"exit {code}: {err[-2000:]}"
    if code == 2:
        assert "error: " in err or "Error: " in err, err


@SETTINGS
@given(recipe=RECIPE_OR_JUNK, how=st.integers(0, 3))
def test_run_only_exits_0_or_with_a_named_error(stubs, capsys, recipe, how):
    path = stubs / ("r.json" if how % 2 else "r.yaml")
    path.write_text(_render(recipe, how))
    code = run_cli(["run", str(path), "--storage", f"sqlite:///{stubs / 'runs.db'}"])
    out = capsys.readouterr()
    _check(code, out.out, out.err)


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_text_as_a_recipe_is_a_named_error(stubs, capsys, text):
    path = stubs / "t.yaml"
    path.write_bytes(text.encode("latin-1", errors="replace") if text.isascii() is False else text.encode())
    code = run_cli(["run", str(path), "--storage", f"sqlite:///{stubs / 'runs.db'}"])
    out = capsys.readouterr()
    _check(code, out.out, out.err)


@settings(SETTINGS, max_examples=100)
@given(space=SPACE, how=st.integers(0, 3))
def test_search_only_exits_0_or_with_a_named_error(stubs, capsys, space, how):
    path = stubs / "space.yaml"
    path.write_text(_render(space, how - how % 2))  # spaces are YAML
    code = run_cli(["search", str(path), "-n", "2", "--storage", f"sqlite:///{stubs / 'study.db'}",
                    "--study", f"s{abs(hash(path.read_text())) % 10 ** 8}"])
    out = capsys.readouterr()
    _check(code, out.out, out.err)


ROW_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.text(max_size=8))
ROWS = st.lists(st.dictionaries(st.sampled_from(["text", "label", "other"]), ROW_VALUES, max_size=3), max_size=6)


@settings(SETTINGS, max_examples=200)
@given(rows=ROWS, kind=st.sampled_from(["csv", "jsonl", "json", "tsv"]), noise=st.binary(max_size=20),
       where=st.integers(0, 200))
def test_data_files_are_read_or_refused_with_a_data_error(stubs, rows, kind, noise, where):
    """Reading a user's file (the first thing the text-file task does) never raises anything but DataError."""
    from leanfit.tasks.files import label_ids, read_table

    if kind in ("csv", "tsv"):
        sep = "," if kind == "csv" else "\t"
        text = "text" + sep + "label\n" + "\n".join(sep.join(str(v) for v in r.values()) for r in rows)
    elif kind == "json":
        text = json.dumps(rows)
    else:
        text = "\n".join(json.dumps(r) for r in rows)
    raw = text.encode()
    raw = raw[:where] + noise + raw[where:]
    path = stubs / f"d.{kind}"
    path.write_bytes(raw)
    try:
        texts, labels = read_table(path)
        label_ids(labels)
    except (DataError, MissingExtraError):
        pass
