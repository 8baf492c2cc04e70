import json
import subprocess
import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[2]


def leanfit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "leanfit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_and_package_import_no_torch():
    code = ("import sys, leanfit, leanfit.cli; "
            "heavy = [m for m in ('torch', 'transformers', 'optuna', 'peft') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_commands():
    out = leanfit("--help")
    assert out.returncode == 0
    for cmd in ("demo", "run", "list"):
        assert cmd in out.stdout


def test_run_stores_a_trial_and_writes_json(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    out = leanfit("run", str(ROOT / "examples" / "digits-lora.yaml"), "--storage", db, "--out", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    assert "digits-lora-r4" in out.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["status"] == "complete" and res["costs"]["trainable_params"] == 4 * (64 + 128) + 4 * 256 + 1290
    trials = optuna.load_study(study_name="leanfit-runs", storage=db).trials
    assert len(trials) == 1 and trials[0].user_attrs["recipe_id"] == res["recipe_id"]


def test_bad_recipe_is_one_clear_line_not_a_traceback(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("task: digits-mlp\nadapter: {name: lorra}\n")
    out = leanfit("run", str(p), "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "unknown adapters method 'lorra'. Did you mean 'lora'" in out.stderr


def test_list_shows_tasks_and_methods():
    out = leanfit("list")
    assert out.returncode == 0
    for name in ("digits-mlp", "minilm-bbc", "head_only", "lora", "adamw", "adan"):
        assert name in out.stdout


def test_every_public_name_resolves():
    import leanfit

    missing = [n for n in leanfit.__all__ if getattr(leanfit, n, None) is None]
    assert missing == []
    assert callable(leanfit.run_study) and callable(leanfit.pareto_front)
