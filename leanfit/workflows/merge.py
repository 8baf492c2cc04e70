"""What `leanfit merge merge.yaml` and `leanfit barrier A B --task T` do, as plain functions (the CLI only prints).

merge.yaml::

    method: ties                 # any registered merge method (leanfit list merge)
    params: {density: 0.3, lam: 1.0}
    base: base.safetensors       # the shared pre-trained weights (needed by task_arithmetic, ties, dare, della);
                                 # "pretrained": the first task's own pre-trained model (MiniLM, SmolLM2, ...)
    task: digits-mlp             # default task for every model (or give task/task_params per model)
    task_params: {hidden: 64}
    models:
      - checkpoint: a.safetensors
      - {checkpoint: b.safetensors, task: mnist1d-cnn}
      - runs/c/                  # a folder from `leanfit run --save`: its task comes from its manifest
    per_task_heads: false        # true: merge everything but the heads; each task keeps its own model's head
    output: merged.safetensors   # optional: the merged weights as one safetensors file
    save: merged/                # optional: model folder(s) like `leanfit run --save` writes, for predict/export;
                                 # with per-task heads one folder per task, save/<task>/, merged encoder + its head
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..engine import registry
from ..engine.errors import ConfigError, check, check_keys
from ..engine.task import build_task, is_head
from ..methods.merge.arithmetic import diagonal_fisher
from ..methods.merge.rebasin import align, barrier, evaluate_sd, interpolation_curve
from .weights import read_safetensors

KNOWN = {"method", "params", "base", "task", "task_params", "models", "per_task_heads", "output", "save", "n_fisher"}


def load_weights(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    check(p.suffix == ".safetensors" or not p.exists(), what, str(p), "a .safetensors file (full model weights)",
          "Fix: save with safetensors.torch.save_file(model.state_dict(), path).")
    sd = read_safetensors(p, what)
    if any("lora_" in k or "modules_to_save" in k for k in sd):
        raise ConfigError(f"{what} must hold full model weights, but {str(p)!r} is an adapter checkpoint (keys like "
                          f"{next(k for k in sd if 'lora_' in k or 'modules_to_save' in k)!r}). Fix: merge the adapter "
                          f"into the base model first (peft merge_and_unload) and save the full state dict.")
    return sd


def load_saved_folder(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A ``leanfit run --save`` folder as full weights (adapters merged, quantized codes unpacked) and the task
    spec its recipe trained on."""
    from .model_io import load

    saved = load(path)
    recipe_task = (saved.manifest.get("recipe") or {}).get("task") or {"name": saved.manifest.get("task")}
    if saved.manifest.get("adapter_separate"):
        raise ConfigError(f"{what} must hold full model weights, but {str(path)!r} keeps its adapter separate. "
                          "Fix: save it again without --separate-adapter.")
    return {k: v.detach().clone() for k, v in saved.model.state_dict().items()}, dict(recipe_task)


def _task_model(task, sd: Mapping[str, torch.Tensor], what: str):
    model = task.build_model(0)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise ConfigError(f"{what} must match task {task.name!r}'s model, but loading failed: {' '.join(first)} "
                          f"Fix: use the task (and task_params) the checkpoint was trained with.") from None
    return model


def run_merge(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Load the models, merge them with the spec's method, and evaluate merged vs individual on every task."""
    spec = dict(spec)
    check_keys(spec, KNOWN, "merge.yaml")
    check(isinstance(spec.get("method"), str), "method", spec.get("method"), "a merge method name",
          f"Fix: one of {[e.name for e in registry.list_methods('merge')]}.")
    entry = registry.get("merge", spec["method"])
    merger = entry.build(spec.get("params") or {})
    if entry.capabilities.needs_base and not spec.get("base"):
        raise ConfigError(f"base must be given for method {entry.name!r} (it merges task vectors θ_t − θ_base), but "
                          f"got none. Fix: add 'base: pretrained.safetensors' (or 'base: pretrained' for the task's "
                          f"pre-trained model), or use method linear/fisher/rebasin.")
    if spec.get("save"):  # before any loading or merging: a bad folder must not cost the merge
        from .model_io import check_writable

        check_writable(spec["save"])
    entries, tasks = _load_models(spec)
    base = _load_base(spec.get("base"), tasks[entries[0]["task_key"]])
    per_head = spec.get("per_task_heads", len(tasks) > 1)
    if len(tasks) > 1 and not per_head:
        raise ConfigError("per_task_heads must be true when the models come from different tasks, but got false. "
                          "Fix: set per_task_heads: true (each task keeps its own head; the rest is merged).")
    heads = {k: t.head for k, t in tasks.items()}
    strip = (lambda sd, h: {k: v for k, v in sd.items() if not is_head(k, h)}) if per_head else (lambda sd, h: dict(sd))
    bodies = [strip(e["sd"], heads[e["task_key"]]) for e in entries]
    base_body = strip(base, heads[entries[0]["task_key"]]) if base is not None else None
    inputs = {name: MERGE_INPUTS[name](merger, entries, tasks, heads, strip) for name in entry.capabilities.inputs}
    merged = merger.merge(base_body, bodies, **inputs)
    rows = [_evaluate(e, tasks[e["task_key"]], merged, per_head) for e in entries]
    if spec.get("output"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in merged.items()}, str(spec["output"]))
    out = {"method": entry.name, "params": spec.get("params") or {}, "per_task_heads": bool(per_head),
           "models": rows, "output": spec.get("output")}
    if spec.get("save"):
        out["save"] = [str(f) for f in _save_folders(Path(spec["save"]), out, entries, tasks, merged, per_head)]
    return out


def _save_folders(folder: Path, report: Mapping[str, Any], entries: list[dict[str, Any]], tasks: Mapping[tuple, Any],
                  merged: Mapping[str, torch.Tensor], per_head: bool) -> list[Path]:
    """The merged model as model folders: one (``folder``) when the heads are merged too, else one per model's task
    (``folder/<task>``, ``-2``… when two models share a task): the merged body with that model's own head. Each
    manifest carries the merged model's validation and test accuracy and what was merged."""
    from ..engine.result import RunResult
    from .model_io import save

    done, names = [], set()
    for e, row in zip(entries if per_head else entries[:1], report["models"]):
        task = tasks[e["task_key"]]
        sd = {**merged, **{k: v for k, v in e["sd"].items() if is_head(k, task.head)}} if per_head else merged
        model = task.build_model(0)
        model.load_state_dict(sd)
        name = task.name
        while per_head and name in names:
            name = f"{task.name}-{len(names) + 1}"
        names.add(name)
        recipe = {"task": e["task_spec"], "name": f"merge-{report['method']}"}
        res = RunResult(recipe=recipe, recipe_id=f"merge-{report['method']}", task=task.name,
                        metrics={"accuracy": row["validation_merged_accuracy"]},
                        test_metrics={"accuracy": row["merged_accuracy"]},
                        extra={"merge": {"method": report["method"], "params": report["params"],
                                         "models": [x["checkpoint"] for x in entries]}})
        done.append(save(folder / name if per_head else folder, model.eval(), task, res, None, recipe))
    return done


def _load_base(base: Any, task: Any) -> dict[str, torch.Tensor] | None:
    if not base:
        return None
    if base == "pretrained":  # the pre-trained model the task fine-tunes (its head, if any, is freshly built)
        return {k: v.detach().clone() for k, v in task.build_model(0).state_dict().items()}
    return load_weights(base, "base")


def _load_models(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[tuple, Any]]:
    """The spec's models ({checkpoint, task_key, sd}) and their tasks by (name, params), each checkpoint checked
    against its task's model."""
    models = spec.get("models")
    check(isinstance(models, list) and len(models) >= 2, "models", models,
          "a list of at least two entries ({checkpoint: file.safetensors, task: name})")
    entries, tasks = [], {}
    for i, m in enumerate(models):
        m = {"checkpoint": m} if isinstance(m, str) else dict(m)
        check("checkpoint" in m, f"models[{i}]", m, "a mapping with a 'checkpoint' key")
        what = f"models[{i}].checkpoint"
        sd, saved_task = load_saved_folder(m["checkpoint"], what) if Path(m["checkpoint"]).is_dir() else (None, {})
        tname = m.get("task", spec.get("task", saved_task.get("name")))
        check(isinstance(tname, str), f"models[{i}].task", tname, "a task name (here or as top-level 'task')")
        tparams = m.get("task_params", spec.get("task_params"))
        tparams = tparams if tparams is not None else {k: v for k, v in saved_task.items() if k != "name"}
        key = (tname, tuple(sorted((k, repr(v)) for k, v in tparams.items())))
        if key not in tasks:
            tasks[key] = build_task(tname, **tparams)
        sd = sd if sd is not None else load_weights(m["checkpoint"], what)
        _task_model(tasks[key], sd, what)
        entries.append({"checkpoint": str(m["checkpoint"]), "task_key": key, "sd": sd,
                        "task_spec": {"name": tname, **tparams}})
    return entries, tasks


def _evaluate(e: Mapping[str, Any], task: Any, merged: Mapping[str, torch.Tensor], per_head: bool) -> dict[str, Any]:
    """Merged vs individual accuracy of one model on its task's test split (with its own head when heads are per
    task); validation accuracy beside it, for anyone choosing merge settings."""
    full = {**merged, **{k: v for k, v in e["sd"].items() if is_head(k, task.head)}} if per_head else merged
    out = {"checkpoint": e["checkpoint"], "task": task.name}
    for split, pre in (("test", ""), ("validation", "validation_")):
        ind = evaluate_sd(task.build_model(0), e["sd"], task, split)
        mer = evaluate_sd(task.build_model(0), full, task, split)
        out.update({f"{pre}individual_accuracy": ind["accuracy"], f"{pre}merged_accuracy": mer["accuracy"],
                    f"{pre}normalized": mer["accuracy"] / max(ind["accuracy"], 1e-12), f"{pre}merged_loss": mer["loss"]})
    return out


# What a merger may ask for (``Capabilities.inputs``), computed here from the models and their tasks.
def _fisher_input(merger, entries, tasks, heads, strip) -> list[dict[str, torch.Tensor]]:
    """One diagonal Fisher per model, on its own task's train rows (head tensors stripped like the weights)."""
    out = []
    for e in entries:
        t = tasks[e["task_key"]]
        f = diagonal_fisher(_task_model(t, e["sd"], "checkpoint"), t, n_samples=merger.config.n_samples,
                            empirical=merger.config.empirical)
        out.append(strip(f, heads[e["task_key"]]))
    return out


def _rows_input(merger, entries, tasks, heads, strip) -> torch.Tensor:
    """Input rows for activation matching: the first model's task's train features (PLeaS)."""
    if getattr(merger.config, "ratio", 0) != 0:
        raise ConfigError(f"params.ratio must be 0 for `leanfit merge` (the merged model must fit the task's "
                          f"model), but got {merger.config.ratio}. Fix: use ratio 0, or call "
                          f"leanfit.methods.merge.pleas.pleas_merge for a wider merged MLP.")
    return tasks[entries[0]["task_key"]].train["x"]


MERGE_INPUTS = {"fisher": _fisher_input, "inputs": _rows_input}


def run_barrier(a: str, b: str, task_name: str, task_params: Mapping[str, Any] | None = None, points: int = 11,
                png: str | None = None) -> dict[str, Any]:
    from ..report.plots import plot_curves

    check(isinstance(points, int) and points >= 3 and points % 2 == 1, "--points", points,
          "an odd integer >= 3 (so the midpoint α = 0.5 is on the grid)")
    task = build_task(task_name, **(task_params or {}))
    sa, sb = load_weights(a, "A"), load_weights(b, "B")
    _task_model(task, sa, "A")
    _task_model(task, sb, "B")
    model = task.build_model(0)
    naive = interpolation_curve(model, task, sa, sb, points)
    aligned = interpolation_curve(model, task, sa, align(sa, sb), points)
    if png:
        plot_curves({"naive": naive, "weight matching": aligned}, png, f"{task.name}: linear path A → B")
    return {"task": task.name, "naive": {**barrier(naive), "curve": naive},
            "aligned": {**barrier(aligned), "curve": aligned}, "png": png}
