"""`leanfit search` over a language-model space (issue 12): a tiny random Llama on lm-arithmetic, adapters and
learning rates searched with successive halving on the validation eval_loss curve; every trial is stored with LM
metrics, a pruned trial keeps its partial curve, and test is scored only for finished runs."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from leanfit.engine.store import open_storage
from leanfit.study.config import StudyConfig
from leanfit.study.runner import run_study

SPACE = {
    "task": {"name": "lm-arithmetic", "model": "tiny", "n_train": 48, "n_validation": 8, "n_test": 8},
    "schedule": {"epochs": 1, "batch_size": 8, "eval_every": 2},
    "adapter": {"lora": {"r": {"int": [2, 8]}}, "ia3": {}},
    "optimizer": {"choices": ["adamw"], "params": {"lr": {"log": [1.0e-5, 1.0e-2]}}},
    "stopper": {"resource": "samples", "min_resource": 16, "reduction_factor": 2, "min_trials": 2,
                "metric": "eval_loss"},
}


def test_search_over_an_lm_space_with_halving_on_eval_loss(storage_url):
    cfg = StudyConfig.from_space(SPACE, n_trials=5, sampler="random", objectives="eval_loss,trainable_params")
    s = run_study(cfg, storage_url, "lm", log=None)
    assert s.ran == 5
    trials = optuna.load_study(study_name="lm", storage=open_storage(storage_url)).get_trials()
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.PRUNED for t in trials), "5 trials over a 1e-5..1e-2 LR range: someone lags"
    for t in trials:
        res = t.user_attrs["result"]
        assert {"eval_loss", "perplexity", "token_accuracy"} <= set(res["metrics"])
        if t.state == TrialState.COMPLETE:
            assert t.values == [res["metrics"]["eval_loss"], res["costs"]["trainable_params"]]
            assert "eval_loss" in res["test_metrics"]
        else:
            assert not res["test_metrics"] and res["curve"] and "eval_loss" in res["extra"]["stop_reason"]
