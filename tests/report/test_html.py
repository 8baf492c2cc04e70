import re
import shutil
import subprocess

import pytest

from leanfit.report.html import study_html
from leanfit.report.profiles import performance_profiles
from leanfit.engine.result import RunResult


def _runs():
    out = []
    for task in ("digits-mlp", "mnist1d-cnn"):
        for i, (label, status) in enumerate([("lora+adamw", "complete"), ("full+adamw", "complete"),
                                             ("head_only+lion", "pruned"), ("full+lion", "failed")]):
            curve = [{"step": s, "samples": 100 * s, "flops": 1e6 * s * (i + 1), "wall_time_s": 0.1 * s * (i + 1),
                      "accuracy": min(0.99, 0.3 + 0.15 * s + 0.05 * i)} for s in range(1, 3 if status == "pruned" else 5)]
            out.append(RunResult(recipe={"name": label}, recipe_id=f"{task}{i}", task=task, status=status,
                                 metrics={"accuracy": curve[-1]["accuracy"]} if status != "failed" else {},
                                 costs={"train_flops": curve[-1]["flops"], "trainable_params": 10 ** (i + 2),
                                        "total_params": 10 ** 6}, curve=curve if status != "failed" else []))
    return out


def test_html_is_self_contained_and_has_every_section(tmp_path):
    runs = _runs()
    p = study_html(runs, tmp_path / "r.html", ("train_flops", "trainable_params"),
                   profiles=performance_profiles(runs))
    text = p.read_text()
    assert "<script src=" not in text  # plotly.js inlined: opens offline
    assert text.count("Plotly.newPlot") == 7  # 2 tasks × (frontier + curves + every objective) + profiles
    assert len(re.findall(r'id="leanfit-plot-\d"', text)) == 7
    assert "stopped (successive halving)" in text and "Pareto frontier" in text and "performance profiles" in text
    assert text.count(": every objective</h2>") == 2 and "all 8 trials" in text  # every objective; every trial listed
    legends = re.findall(r'"name":"([^"]+) \(complete\)"', text)
    assert len(legends) == len(set(legends))  # one legend entry per trial (ids keep same-label trials apart)


CHROMIUM = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium/google-chrome on PATH (.ci/run installs Debian's chromium)")
def test_html_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    runs = _runs()
    page = study_html(runs, tmp_path / "r.html", ("train_flops",), profiles=performance_profiles(runs))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900",
             "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # plotly.js ran: it replaced each empty div with an SVG plot
    assert 'id="leanfit-plot-0"' in dom and "main-svg" in dom and "scatterlayer" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    colors = len(img.getcolors(maxcolors=1 << 16) or [])
    assert hi - lo > 100 and colors > 20, "screenshot is blank"
