"""`optuna-dashboard sqlite:///leanfit.db` shows leanfit runs: drive its WSGI app in-process (no server, no port)."""
import io
import json

import pytest

from leanfit import Recipe, run_recipe, save_run

dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed (pip install 'leanfit[dashboard]')")


def get(app, path):
    status = {}
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
           "SERVER_PORT": "0", "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http",
           "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(app(env, lambda s, h, *a: status.setdefault("s", s)))
    assert status["s"].startswith("200"), (path, status, body[:200])
    return json.loads(body)


def test_dashboard_lists_our_study_and_trial_attrs(storage_url):
    res = run_recipe(Recipe.from_dict({"task": "digits-mlp", "schedule": {"epochs": 1}}))
    save_run(res, storage_url)
    app = dashboard.wsgi(storage_url)
    studies = get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["leanfit-runs"]
    detail = get(app, f"/api/studies/{studies[0]['study_id']}")
    trial = detail["trials"][0]
    attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
    assert trial["state"] == "Complete"
    assert attrs["trainable_params"] == "26122" and attrs["recipe_id"] == res.recipe_id
