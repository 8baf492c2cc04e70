"""`leanfit compress`: train (or load a safetensors checkpoint), apply compression steps in order, and measure
the original and the compressed model side by side (accuracy, parameters, non-zeros, bytes on disk, median CPU
latency measured interleaved).

Spec (YAML/JSON) = a recipe without ``compress`` plus:
  ``steps``: list of compress methods ``[{name: structured, ratio: 0.5}, {name: int8}]`` (methods registered with
  ``during_training`` act inside the training run); ``checkpoint``: a safetensors state dict of the task's model, or
  a model folder from ``leanfit run --save`` (its task comes from its manifest), to load instead of training;
  ``latency``: ``{batch_size, rounds}``; ``output``: a safetensors file for the compressed weights; ``save``: a
  model folder for them (``leanfit predict`` / ``export`` / ``leanfit.load`` use it).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import torch

from ..engine.errors import ConfigError, check
from ..engine.recipe import Recipe
from ..engine.registry import get
from ..engine.run import build_run
from ..methods.compress.export import compressed_state_dict, latency_side_by_side, measure
from .weights import read_safetensors

SPEC_KEYS = ("steps", "checkpoint", "latency", "output", "save")


def load_saved(folder: str, recipe_dict: Mapping[str, Any]):
    """(task, model, None) from a ``leanfit run --save`` folder: the spec's task if it names one, else the saved
    recipe's; the weights as saved (adapters merged)."""
    from ..engine.task import build_task
    from .model_io import load

    saved = load(folder)
    if saved.manifest.get("adapter_separate"):
        raise ConfigError(f"checkpoint {folder!r} keeps its adapter separate; compression needs merged weights. "
                          "Fix: save the run again without --separate-adapter.")
    task_spec = recipe_dict.get("task") or (saved.manifest.get("recipe") or {}).get("task") or saved.manifest["task"]
    r = Recipe.from_dict({"task": task_spec})
    model = saved.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return build_task(r.task.name, **r.task.kwargs), model, None


def train_or_load(recipe_dict: Mapping[str, Any], checkpoint: str | None, callbacks=()):
    """(task, trained model, training state or None). LoRA-style adapters are merged into the base weights."""
    if checkpoint and Path(checkpoint).is_dir():
        return load_saved(checkpoint, recipe_dict)
    recipe = Recipe.from_dict(dict(recipe_dict))
    sd = read_safetensors(checkpoint, "checkpoint") if checkpoint else None  # a bad file fails before any loading
    run = build_run(recipe)
    task, model, adapter = run.task, run.model, run.adapter
    state = None
    if sd is not None:
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if unexpected or (missing and len(missing) == len(model.state_dict())):
            raise ConfigError(f"checkpoint {checkpoint!r} does not fit task {task.name}: unexpected keys "
                              f"{unexpected[:5]}, missing {missing[:5]}. Fix: give a state dict saved from this task.")
    else:
        state = run.trainer(callbacks).fit()
    if getattr(adapter, "mergeable", False) and recipe.adapter.name != "full":
        model = adapter.merge(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return task, model.eval(), state


def run_compress(spec: Mapping[str, Any]) -> dict:
    """The whole pipeline; returns {"original": {...}, "compressed": {...}, "steps": [reports], "latency_ms": ...}."""
    spec = dict(spec)
    steps = spec.pop("steps", None) or spec.pop("compress", None)
    check(isinstance(steps, list) and len(steps) > 0, "steps", steps, "a non-empty list of compress methods",
          "Fix: e.g. steps: [{name: magnitude, sparsity: 0.5}].")
    checkpoint, lat, output = spec.pop("checkpoint", None), spec.pop("latency", None) or {}, spec.pop("output", None)
    save_to = spec.pop("save", None)
    built = []
    for i, s in enumerate(steps):  # every step's config is validated now, before anything trains
        check(isinstance(s, str) or (isinstance(s, Mapping) and isinstance(s.get("name"), str)), f"steps[{i}]", s,
              "a compress method name or a mapping with a 'name'", "Fix: e.g. {name: magnitude, sparsity: 0.5}.")
        s = {"name": s} if isinstance(s, str) else dict(s)
        entry = get("compress", s.pop("name"))
        built.append((entry.name, entry, entry.make_config(s)))
    during = [e.build(kw) for _, e, kw in built if e.capabilities.during_training]
    check(not (during and checkpoint), "steps", [n for n, e, _ in built if e.capabilities.during_training],
          "post-training methods when a checkpoint is given", "Fix: remove 'checkpoint' to train with them.")
    task, original, state = train_or_load(spec, checkpoint, during)
    model = copy.deepcopy(original)
    reports = []
    if state is not None and during:  # gradual pruning already ran and reported at the end of training
        reports += list(state.compress_reports)
        from ..methods.compress.magnitude import make_permanent
        make_permanent(model)
    for name, e, kw in built:
        if not e.capabilities.during_training:
            reports.append(dict(e.build(kw).compress(model, task)))
    model.eval()
    result = {"task": task.name, "steps": reports, "original": measure(task, original),
              "compressed": measure(task, model)}
    ms = latency_side_by_side(task, {"original": original, "compressed": model}, lat.get("batch_size", 32),
                              lat.get("rounds", 15))
    result["latency_ms"] = ms
    o, c = result["original"], result["compressed"]
    result["ratios"] = {"params": c["params"] / o["params"], "nonzeros": c["nonzeros"] / o["nonzeros"],
                        "file_bytes": c["file_bytes"] / o["file_bytes"],
                        "latency": ms["compressed"] / ms["original"], "accuracy_delta": c["accuracy"] - o["accuracy"],
                        "test_accuracy_delta": c["test_accuracy"] - o["test_accuracy"]}
    if output:
        from safetensors.torch import save_file

        save_file(compressed_state_dict(model), output)
        result["output"] = str(output)
    if save_to:
        result["save"] = str(_save_folder(save_to, model, task, spec, result))
    return result


def _save_folder(folder: str, model, task, spec: Mapping[str, Any], result: Mapping[str, Any]):
    """The compressed model as a model folder whose manifest and card carry the compressed model's numbers."""
    from ..engine.result import RunResult
    from .model_io import save

    c = result["compressed"]
    rec = {k: v for k, v in spec.items() if k in ("task", "adapter", "optimizer", "schedule", "seed", "name")}
    run = RunResult(recipe=rec, recipe_id="compressed", task=task.name, metrics={"accuracy": c["accuracy"]},
                    test_metrics={"accuracy": c["test_accuracy"]}, extra={"compress": result["steps"]},
                    costs={"total_params": c["params"]})
    return save(folder, model, task, run, None, rec)
