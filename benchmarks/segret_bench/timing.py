"""Interleaved wall-clock timing of several models in one process.

Other jobs share the benchmark machine, so load drifts during a run. Timing model A five times and then model
B five times would turn that drift into a difference between A and B. Instead every round times each model
once (A, B, C, then B, C, A, ... rotating so no model is always first after a pause), and the min (the least
disturbed run) and the median are reported; ratios come from timings taken in the same rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

TIMING_METHOD = (
    "time.perf_counter around each call (torch.cuda.synchronize before and after on CUDA), inference under "
    "torch.inference_mode in eval mode; all models of a table run interleaved in rotating order in one process "
    "(one call each per round), after warm-up rounds; the first call is reported separately and excluded; "
    "min and median over the timed rounds."
)

@dataclass
class Timing:
    """Wall-clock seconds of one model's calls; `first_call_s` includes any compilation triggered by the call."""

    status: str = "ok"
    first_call_s: float | None = None
    times_s: list[float] = field(default_factory=list)

    @property
    def min_s(self) -> float | None:
        return min(self.times_s) if self.times_s else None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer read after it covers the work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def describe_error(error: BaseException) -> str:
    """'OOM' for allocation failures (CPU allocator, CUDA, MemoryError), else the exception's first line."""
    message = str(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in message:
        return "OOM"
    first_line = message.splitlines()[0] if message else ""
    return f"error: {type(error).__name__}: {first_line}"[:200]


def time_interleaved(
    steps: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict[str, Timing]:
    """Time each step `repeats` times in rotating interleaved rounds, after `warmup` untimed rounds.

    The first warm-up call of each step is timed on its own (`first_call_s`): it pays one-off costs, chiefly
    torch.compile / FlexAttention compilation, which must not leak into steady-state numbers. A step that
    raises (OOM, unsupported operation) is recorded with that status and dropped from later rounds.
    """
    timings = {label: Timing() for label in steps}
    live = list(steps)

    def run_round(record: Callable[[str, float], None], offset: int) -> None:
        order = live[offset % len(live) :] + live[: offset % len(live)] if live else []
        for label in order:
            try:
                record(label, _timed(steps[label], device))
            except Exception as error:  # noqa: BLE001 - any failure of one model must not stop the others
                timings[label].status = describe_error(error)
                live.remove(label)
                log(f"  {label}: {timings[label].status}")

    def record_first(label: str, seconds: float) -> None:
        timings[label].first_call_s = seconds
        log(f"  {label}: first call {seconds:.3f} s")

    run_round(record_first, 0)
    for index in range(1, warmup):
        run_round(lambda label, seconds: None, index)
    for index in range(repeats):
        run_round(lambda label, seconds: timings[label].times_s.append(seconds), index)
    return timings


def timing_settings(dtype: torch.dtype, repeats: int, warmup: int, **more: Any) -> dict[str, Any]:
    """The `settings` a timed result document records: dtype, rounds, warm-up rounds, then `more`."""
    return {"dtype": str(dtype).removeprefix("torch."), "repeats": repeats, "warmup": warmup, **more}
