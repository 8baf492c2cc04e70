"""Start-up cost: `python -c "import leanfit"` and `leanfit --help`, median of several fresh processes each
(target < 0.5 s; neither may import torch)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import median, write

BIN = Path(sys.executable).parent


def timed(cmd: list[str], reps: int = 7) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        ts.append(time.perf_counter() - t0)
    return median(ts)


def main() -> None:
    base = timed([sys.executable, "-c", "pass"])
    res = {"python_empty_s": base,
           "import_leanfit_s": timed([sys.executable, "-c", "import leanfit"]),
           "leanfit_help_s": timed([str(BIN / "leanfit"), "--help"])}
    p = write("startup", {"reps": 7}, res)
    print(res, f"wrote {p}")


if __name__ == "__main__":
    main()
