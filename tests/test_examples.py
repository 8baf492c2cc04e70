"""The example files README points to stay valid: each parses and validates against the registry, and the
compress example runs end to end (shortened)."""
from pathlib import Path

from leanfit.engine.recipe import Recipe, load_mapping

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_recipe_examples_validate():
    for name in ("digits-lora.yaml", "my-text-data.yaml", "lm-topic-lora.yaml"):
        r = Recipe.from_dict(load_mapping(EXAMPLES / name))
        assert Recipe.from_dict(r.to_dict()) == r


def test_space_example_validates():
    from leanfit.study import StudyConfig

    cfg = StudyConfig.from_space(load_mapping(EXAMPLES / "space.yaml"), n_trials=2)
    assert tuple(cfg.objectives) == ("accuracy", "train_flops", "trainable_params")
    lm = StudyConfig.from_space(load_mapping(EXAMPLES / "lm-space.yaml"), n_trials=2)
    assert tuple(lm.objectives) == ("eval_loss", "trainable_params") and lm.stopper["metric"] == "eval_loss"


def test_compress_example_runs():
    from leanfit.workflows.compress import run_compress

    spec = load_mapping(EXAMPLES / "compress.yaml")
    spec["schedule"] = {**spec["schedule"], "epochs": 1}
    spec["latency"] = {"batch_size": 8, "rounds": 2}
    res = run_compress(spec)
    assert [s["method"] for s in res["steps"]] == ["svd", "gptq"]
    assert res["compressed"]["params"] < res["original"]["params"]
    assert res["ratios"]["file_bytes"] < 0.5
