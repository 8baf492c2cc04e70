"""Four `leanfit run` started at once on a fresh SQLite file all store their run (issue 14: one of four was lost
to `UNIQUE constraint failed: alembic_version` / `table ... already exists`), and a config error appears before
any data, model or heavy library loads."""
import os
import subprocess
import sys
import time

import yaml

from leanfit.engine.store import load_runs


def test_four_runs_on_a_fresh_sqlite_file_are_all_stored(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"task": "digits-mlp", "adapter": "head_only",
                                      "schedule": {"epochs": 1, "max_steps": 1}}))
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "leanfit.cli", "run", str(recipe), "--storage", url], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-800:] for o in outs)
    assert len(load_runs(url)) == 4


def test_a_task_key_error_comes_before_data_and_heavy_imports(tmp_path):
    """The whole recipe, task keys included, is validated first: the error names the unknown key and lists the
    valid ones, although the data file does not exist; no model library is imported for it."""
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: {name: text-file, train: /no/such/file.csv, bogus: 1}\n")
    code = ("import sys, time; t = time.time(); from leanfit.cli import run_cli; rc = run_cli(['run', sys.argv[1]]); "
            "print(rc, round(time.time() - t, 2), sorted(m for m in ('transformers', 'peft', 'pytorch_optimizer', "
            "'sklearn', 'optuna') if m in sys.modules))")
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True, timeout=120)
    wall = time.time() - t0
    rc, _, mods = out.stdout.strip().split(" ", 2)
    assert rc == "2" and mods == "[]", out.stdout + out.stderr
    assert "unknown parameter(s) 'bogus'. Valid parameters: eval, label_column, max_length" in out.stderr
    assert wall < 30  # generous for a loaded CI box; measured 1.4-3.5 s (torch import is most of it)
