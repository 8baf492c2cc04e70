"""leanfit Trainer vs an equivalent hand-written PyTorch loop: same model, same batches, interleaved in one process.

Each round trains N steps with the Trainer (its own train-time clock, metering and eval excluded) and N steps
with a bare loop, alternating which goes first; we report the median per-step time ratio (target ≤ 1.03).
Usage: python benchmarks/overhead.py [--rounds 7] [--steps 8]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from common import median, write
from leanfit.engine.recipe import Schedule
from leanfit.engine.task import build_task
from leanfit.engine.trainer import Trainer


def bare_loop(task, model, opt, batches) -> float:
    t0 = time.perf_counter()
    model.train()
    for idx in batches:
        b = task.batch("train", idx)  # the same rows and collate (dynamic padding) the Trainer uses
        logits = task.forward(model, b)
        loss = F.cross_entropy(logits, b["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / len(batches)


def leanfit_loop(task, model, opt, steps, bs, seed) -> float:
    s = Trainer(task, model, opt, Schedule(epochs=1, batch_size=bs, max_steps=steps), seed=seed).fit()
    return s.wall_time / s.step


def measure(task_name: str, task_kw: dict, bs: int, rounds: int, steps: int, lr: float) -> dict:
    task = build_task(task_name, **task_kw)
    model = task.build_model(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ratios, lf, bare = [], [], []
    leanfit_loop(task, model, opt, 2, bs, 0)  # warm-up (allocator, first-shape metering), not recorded
    for r in range(rounds):
        # the Trainer's data order for seed r: the same first `steps` batches for the bare loop
        perm = torch.randperm(task.n_train, generator=torch.Generator().manual_seed(r))
        batches = list(perm.split(bs))[:steps]
        order = (0, 1) if r % 2 == 0 else (1, 0)
        t = [0.0, 0.0]
        for which in order:
            t[which] = leanfit_loop(task, model, opt, steps, bs, r) if which == 0 else bare_loop(task, model, opt, batches)
        lf.append(t[0]), bare.append(t[1]), ratios.append(t[0] / t[1])
        print(f"{task_name} round {r}: leanfit {t[0] * 1e3:.2f} ms/step, bare {t[1] * 1e3:.2f} ms/step, "
              f"ratio {t[0] / t[1]:.3f}", flush=True)
    return {"task": task_name, "task_params": task_kw, "batch_size": bs, "rounds": rounds, "steps_per_round": steps,
            "median_ratio": median(ratios), "ratios": ratios, "median_step_s_leanfit": median(lf),
            "median_step_s_bare": median(bare)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    res = [measure("minilm-bbc", {"n_train": 320, "max_length": 64}, 32, a.rounds, a.steps, 1e-4),
           measure("mnist1d-cnn", {}, 128, a.rounds, 4 * a.steps, 1e-3)]
    p = write("overhead", {"rounds": a.rounds, "steps": a.steps, "threads": torch.get_num_threads()}, res)
    for r in res:
        print(f"{r['task']}: median leanfit/bare step-time ratio {r['median_ratio']:.3f}")
    print(f"wrote {p}")


if __name__ == "__main__":
    main()
