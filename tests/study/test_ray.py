"""Ray executor: trials as Ray tasks against the shared storage (extra leanfit[ray])."""
import optuna
import pytest
from optuna.trial import TrialState

from leanfit.engine.store import open_storage
from leanfit.study.config import StudyConfig
from leanfit.study.runner import run_study

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'leanfit[ray]'")


def test_ray_workers_give_exactly_n_trials(tmp_path, tiny_space):
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    cfg = StudyConfig.from_space(tiny_space, n_trials=4, sampler="random", stopper=None)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        s = run_study(cfg, url, "ray", executor="ray", workers=2, log=None)
    finally:
        ray.shutdown()
    trials = optuna.load_study(study_name="ray", storage=open_storage(url)).get_trials()
    assert s.ran == 4 and len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) >= 1
