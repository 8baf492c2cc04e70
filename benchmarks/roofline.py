"""Achieved training GFLOP/s on MiniLM (leanfit's exact FLOP count / train wall time) vs a large fp32 matmul on the
same machine, measured alternately in one process; reports the fraction of matmul throughput training reaches.
Usage: python benchmarks/roofline.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from common import median, write
from leanfit import Recipe, run_recipe
from leanfit.engine.task import build_task


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    task_kw = {"n_train": 320, "max_length": 64}
    task = build_task("minilm-bbc", **task_kw)
    rows = []
    for r in range(a.rounds):
        mm = matmul_gflops()
        for adapter in ("full", "lora"):
            rec = Recipe.from_dict({"task": {"name": "minilm-bbc", **task_kw}, "adapter": adapter,
                                    "schedule": {"epochs": 1, "batch_size": 32, "max_steps": a.steps}, "seed": r})
            res = run_recipe(rec, task=task)
            train = res.costs["train_flops"] / res.costs["wall_time_s"] / 1e9
            rows.append({"round": r, "adapter": adapter, "matmul_gflops": mm, "train_gflops": train,
                         "fraction": train / mm})
            print(f"round {r} {adapter}: train {train:.1f} GFLOP/s, matmul {mm:.1f} GFLOP/s, "
                  f"fraction {train / mm:.2f}", flush=True)
    summary = {ad: {"median_train_gflops": median([x["train_gflops"] for x in rows if x["adapter"] == ad]),
                    "median_fraction": median([x["fraction"] for x in rows if x["adapter"] == ad])}
               for ad in ("full", "lora")}
    summary["median_matmul_gflops"] = median([x["matmul_gflops"] for x in rows])
    p = write("roofline", {"rounds": a.rounds, "steps": a.steps, "batch": "32x64 tokens",
                           "threads": torch.get_num_threads()}, {"summary": summary, "rows": rows})
    print(summary)
    print(f"wrote {p}")


if __name__ == "__main__":
    main()
