"""`leanfit demo lm` end to end on the tiny Llama (the real one runs in `make demo-lm`): zero-shot plus two
fine-tunes, stored, tabled and plotted."""
from __future__ import annotations

from leanfit.engine.store import load_runs
from leanfit.workflows.demo import run_lm_demo


def test_lm_demo_runs_stores_and_plots(tmp_path, storage_url):
    results = run_lm_demo(storage=storage_url, plot=tmp_path / "lm.png", steps=2, model="tiny")
    assert [r.label for r in results] == ["zero-shot", "lora-r8", "full-ft"]
    assert all(r.status == "complete" and "accuracy" in r.test_metrics for r in results)
    assert results[0].costs["train_flops"] == 0 and results[1].costs["train_flops"] > 0
    assert len(load_runs(storage_url, "leanfit-demo-lm")) == 3 and (tmp_path / "lm.png").stat().st_size > 1000
