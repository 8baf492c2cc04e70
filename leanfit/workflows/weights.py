"""Reading users' weight files (compress's checkpoint, merge's models and base, barrier's A and B): safetensors
only (never pickle), with one named error for a missing, empty, truncated or corrupt file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.errors import ConfigError, DataError


def read_safetensors(path: str | Path, what: str) -> dict[str, Any]:
    """The state dict in ``path``; ``what`` names the field or argument it came from (for the error)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        why = "is a directory" if p.is_dir() else "does not exist"
        raise ConfigError(f"{what} must be an existing .safetensors file, but {str(p)!r} {why}. "
                          f"Fix: check the path (cwd is {Path.cwd()}).")
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        size = p.stat().st_size
        raise DataError(f"{what} must be a complete safetensors file, but {str(p)!r} ({size:,} bytes) cannot be read: "
                        f"{e}. It is empty, truncated (an interrupted copy or save?) or not safetensors. Fix: save it "
                        f"again with safetensors.torch.save_file(model.state_dict(), path).") from None
