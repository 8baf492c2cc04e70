"""The study engine on a real PostgreSQL server (the many-machines storage). .ci/run installs and starts Debian's
postgresql and sets LEANFIT_TEST_POSTGRES_URL; without it these tests skip and say why."""
import os
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from leanfit.engine.store import load_runs, open_storage
from leanfit.engine.store import storage_url
from leanfit.study.config import StudyConfig
from leanfit.study.runner import run_study

URL = os.environ.get("LEANFIT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="LEANFIT_TEST_POSTGRES_URL is not set (no PostgreSQL server; .ci/run starts one: "
                    "postgresql://leanfit:leanfit@localhost/leanfit_test)")


def test_two_workers_on_postgres_give_exactly_n_trials(tiny_space):
    pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install 'leanfit[postgres]'")
    name = f"pg-{uuid.uuid4().hex[:8]}"
    cfg = StudyConfig.from_space(tiny_space, n_trials=6, sampler="tpe", budgets=["trainable_fraction<=50%"])
    s = run_study(cfg, URL, name, workers=2, log=None)
    url = storage_url(URL)  # plain postgresql:// works with psycopg2 under SQLAlchemy 2.1
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()
    assert len(trials) == 6 and sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), s.counts
    assert len(load_runs(url, name)) == 6
    optuna.delete_study(study_name=name, storage=open_storage(url))
