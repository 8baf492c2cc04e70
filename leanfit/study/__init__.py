"""Study engine: search spaces over recipes, multi-objective Optuna studies with hard budgets, our own
successive-halving TrialStopper, resumable local / Ray execution over one shared storage."""
from .config import StudyConfig
from .objectives import parse_budgets, parse_objectives
from .queue import sweep_stale, top_up
from .runner import run_study
from .space import SearchSpace
from .stopper import MemoryRungBoard, OptunaRungBoard, StopperConfig, TrialStopper, promotable, rung_of
from .worker import drain

__all__ = ["MemoryRungBoard", "OptunaRungBoard", "SearchSpace", "StopperConfig", "StudyConfig", "TrialStopper",
           "drain", "parse_budgets", "parse_objectives", "promotable", "rung_of", "run_study", "sweep_stale",
           "top_up"]
