"""What several commands share: the ``--allow-code`` opt-in and the early check that an output path is writable.
(A private module: command discovery skips names starting with ``_``.)"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from ..engine.errors import ALLOW_CODE_ENV, ConfigError

ALLOW_CODE = typer.Option(False, "--allow-code", help="Let the file name Python code (a `module:function` task). "
                          "Off by default: recipes, spaces and specs are data, and a shared file could run anything.")


def opt_in_to_code(allow: bool) -> None:
    """``--allow-code``: set LEANFIT_ALLOW_CODE=1 for this process and the worker processes it starts."""
    if allow:
        os.environ[ALLOW_CODE_ENV] = "1"


def check_writable(path: Path | str | None, option: str) -> None:
    """Fail now, before any training, if ``path`` cannot be written (a folder, a missing or read-only directory).
    Tries to create the file and removes it again; an existing file is opened for appending, not truncated."""
    if path is None:
        return
    if not isinstance(path, (str, Path)):
        raise ConfigError(f"{option} must be a file path, but got {path!r}. Fix: e.g. {option}: out.safetensors.")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} must be a file path, but {str(p)!r} is a directory. "
                          f"Fix: e.g. {option} {p / 'out.json'}.")
    if not p.parent.is_dir():
        raise ConfigError(f"{option} must be in an existing directory, but {str(p.parent)!r} does not exist. "
                          f"Fix: create it (mkdir -p {p.parent}) or choose another path.")
    existed = p.exists()
    try:
        with open(p, "a"):
            pass
    except OSError as e:
        raise ConfigError(f"{option} must be writable, but {str(p)!r} cannot be written ({e.strerror}). "
                          "Fix: choose a writable path.") from None
    if not existed:
        p.unlink()
