"""A rich progress bar as a Trainer callback (steps over the planned total)."""
from __future__ import annotations

from typing import Any

from ..engine.callbacks import Callback, TrainState


class ProgressBar(Callback):
    def __init__(self, description: str = "training", progress: Any = None):
        self.description = description
        self._own = progress is None
        self._progress = progress
        self._task_id: Any = None

    def __enter__(self) -> "ProgressBar":
        if self._own:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own and self._progress is not None:
            self._progress.stop()

    def on_fit_start(self, state: TrainState) -> None:
        if self._progress is not None:
            self._task_id = self._progress.add_task(self.description, total=state.planned_steps, info="")

    def after_step(self, state: TrainState) -> None:
        if self._task_id is not None:
            self._progress.update(self._task_id, completed=state.step, info=f"loss {state.loss.item():.3f}")

    def on_eval(self, state: TrainState) -> None:
        if self._task_id is not None:
            self._progress.update(self._task_id, info=f"acc {100 * state.metrics['accuracy']:.1f}%")
