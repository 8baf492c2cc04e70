"""Cost meters, measured the same way for every method.

- params: trainable / total (``numel`` of unique parameters).
- optimizer state: bytes of every tensor in ``optimizer.state`` (what the optimizer keeps between steps).
- activation memory: bytes autograd saves for backward in one train step, captured with
  ``torch.autograd.graph.saved_tensors_hooks`` (unique storages), so it is exact and noise-free on CPU.
- train memory (model-level, exact): params + grads of trainable params + optimizer state + activations.
- peak RSS (process-level): the kernel's high-water mark, reset at fit start (Linux), else sampled by a thread.
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on forward+backward (matmul/conv/attention FLOPs; HF models
  are loaded with eager attention so CPU attention is counted).
- wall time: a stopwatch that can be paused, so eval and metering are excluded (AlgoPerf rules).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Callable, Iterator

import torch
from torch import nn


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) over unique parameters (tied weights counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def trainable_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter that requires grad, in ``named_parameters`` order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def param_bytes(model: nn.Module, trainable_only: bool = False) -> int:
    seen: set[int] = set()
    n = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        n += p.numel() * p.element_size()
    return n


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def optimizer_state_bytes(optimizer: Any) -> int:
    """Sum of bytes of all tensors the optimizer keeps in ``state`` (scalars like ``step`` tensors included).

    An optimizer may define ``state_bytes()`` when it keeps state outside ``optimizer.state`` (e.g. seeds only).
    """
    if hasattr(optimizer, "state_bytes"):
        return int(optimizer.state_bytes())
    state = getattr(optimizer, "state", {})
    return sum(_tensor_bytes(s) for s in state.values())


def count_flops(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` under FlopCounterMode; return (total FLOPs, fn's return value)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    return float(counter.get_total_flops()), out


def optimizer_step_flops(optimizer: Any, closure: Any = None) -> float:
    """Matmul FLOPs of one optimizer step (``torch.utils.flop_counter``: Muon's Newton–Schulz iterations and
    SOAP's / Shampoo's preconditioner products count; element-wise updates such as Adam's count 0, and
    decompositions such as QR or eigh are not counted). Measured on a copy of the optimizer whose parameters are
    clones carrying the current gradients, so the real parameters and state are untouched; the copy takes one
    uncounted step first (a first step often only initialises state) and the second step is counted."""
    import copy

    params = [p for g in optimizer.param_groups for p in g["params"]]
    memo: dict[int, Any] = {}
    for p in params:
        clone = p.detach().clone().requires_grad_(p.requires_grad)
        clone.grad = None if p.grad is None else p.grad.detach().clone()
        memo[id(p)] = clone
    # a shallow copy keeps the optimizer's own attributes (flags such as foreach); state and groups are copied
    # with every parameter replaced by its clone
    shadow = object.__new__(type(optimizer))  # not copy.copy: Optimizer.__getstate__ drops such attributes
    shadow.__dict__.update(optimizer.__dict__)
    shadow.state = copy.deepcopy(optimizer.state, memo)
    shadow.param_groups = copy.deepcopy(optimizer.param_groups, memo)
    rng = torch.get_rng_state()
    try:
        args = () if closure is None else (closure,)
        shadow.step(*args)
        flops, _ = count_flops(lambda: shadow.step(*args))
    except Exception as e:  # noqa: BLE001 - a meter must not kill a run; the gap is said, not hidden
        import warnings

        warnings.warn(f"could not meter {type(optimizer).__name__}'s step FLOPs ({type(e).__name__}: {e}); "
                      "optimizer_flops counts it as 0.", stacklevel=2)
        flops = 0.0
    finally:
        torch.set_rng_state(rng)
    return flops


@contextlib.contextmanager
def saved_activation_bytes() -> Iterator[list[int]]:
    """Context manager yielding a 1-element list that ends up holding the bytes autograd saved for backward.

    Storages are de-duplicated (a tensor saved by two ops counts once); parameters saved for backward are
    excluded since they are already counted as parameter memory.
    """
    seen: set[int] = set()
    total = [0]

    def pack(t: torch.Tensor):
        if not isinstance(t, nn.Parameter):
            try:
                key = t.untyped_storage().data_ptr()
                size = t.untyped_storage().nbytes()
            except (RuntimeError, NotImplementedError):  # e.g. sparse or functional tensors
                key, size = id(t), t.numel() * t.element_size()
            if key not in seen:
                seen.add(key)
                total[0] += size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


class Stopwatch:
    """Train-time clock; ``with sw.paused():`` excludes eval and metering."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._paused = 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start - self._paused


def current_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # non-Linux
        import psutil

        return psutil.Process().memory_info().rss


class PeakRSS:
    """Peak resident memory of this process while the block runs.

    On Linux the kernel's own high-water mark is reset on entry (``/proc/self/clear_refs`` ← 5) and read on exit
    (``VmHWM``): exact and free. Elsewhere a daemon thread samples RSS every ``interval`` seconds.
    """

    def __init__(self, interval: float = 0.02, enabled: bool = True) -> None:
        self.interval, self.enabled = interval, enabled
        self.baseline = current_rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _read_hwm() -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        if not self.enabled:  # a nested run: leave the caller's high-water mark alone
            return self
        if not (self._reset_hwm() and self._read_hwm() is not None):
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._thread is None:
            self.peak = max(self.peak, self._read_hwm() or 0)
        else:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, current_rss())
