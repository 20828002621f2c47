"""Peak memory of one forward pass, measured in a fresh subprocess per configuration.

Why a subprocess: peak RSS can only grow within a process, and allocator caches, compiled kernels and other
models would all count; a fresh process sees exactly one model at one size. It also makes the run safe: the
child gets an address-space limit (`RLIMIT_AS`, CPU only: CUDA reserves far more virtual memory than it uses)
and a wall-clock timeout, so a configuration that would exhaust the machine's RAM (SegRet-tiny's `eager`
retention at 1024x2048 builds several GB of score matrices) is recorded as "OOM" or "timeout" instead of
taking the machine down or hanging the suite.

What is reported (CPU): the resident set after model construction and input allocation (VmRSS), the absolute
peak RSS over the first call, and that peak minus the post-construction RSS. The peak is the kernel's
high-water mark VmHWM from /proc/self/status, not `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries
`ru_maxrss` over from the forked parent across exec, so in a child of the (larger) suite process it reports the
parent's RSS, not the child's. The first call includes one-off compilation (FlexAttention compiles on its first
call at a new size), so the watermark is then reset (`/proc/self/clear_refs`) and a second, steady-state call
is measured the same way. On CUDA the same fields come from `torch.cuda.memory_allocated` /
`max_memory_allocated`. An exported ONNX graph is measured the same way on onnxruntime's CPU provider
(`probe_onnx_memory`), in a child that imports the same modules.

Run as `python -m segret_bench.memory '<request json>'` (the parent does this); prints one result line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from segret_hf.onnx_inference import INPUT_NAME, inference_session

from .models import ModelSpec, build_model
from .timing import describe_error, synchronize

RESULT_MARKER = "SEGRET_BENCH_MEMORY_RESULT "
_MIB = 2**20
MEMORY_METHOD = (
    "one fresh subprocess per configuration (batch 1, eval, inference_mode) with RLIMIT_AS {limit} and a {timeout} "
    "timeout; CPU: RSS after model construction and input allocation (VmRSS), absolute peak RSS over the first "
    "call (VmHWM; ru_maxrss would carry over the parent's RSS across fork+exec), peak minus post-construction RSS; "
    "then the watermark is reset (/proc/self/clear_refs) and a steady-state second call is measured the same way "
    "(excludes compilation). CUDA: torch.cuda.memory_allocated / max_memory_allocated, no RLIMIT_AS."
)


@dataclass
class MemoryResult:
    """Memory (MiB) and call times (s) of one configuration; fields are None when the run did not get there."""

    status: str
    metric: str = ""
    after_build_mib: float | None = None
    peak_mib: float | None = None
    peak_delta_mib: float | None = None
    steady_peak_mib: float | None = None
    steady_delta_mib: float | None = None
    first_call_s: float | None = None
    steady_call_s: float | None = None


def _status_bytes(field_name: str) -> int:
    """A memory field of /proc/self/status (Linux; reported in kB) in bytes."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def _current_rss() -> int:
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS watermark (VmHWM; Linux >= 4.0). False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _forward(request: dict[str, Any]) -> Callable[[], object]:
    """Build what the request names and return one forward call of it on a fresh random input.

    `spec`: a PyTorch model (`ModelSpec`) on `device` in `dtype`; `onnx_path`: an exported graph on onnxruntime's
    CPU provider with `threads` intra-op threads (float32 input).
    """
    shape = (request["batch_size"], 3, request["height"], request["width"])
    if request.get("onnx_path"):
        cpu = ["CPUExecutionProvider"]
        session = inference_session(request["onnx_path"], threads=request["threads"], providers=cpu)
        pixel_array = torch.randn(shape).numpy()
        return lambda: session.run(None, {INPUT_NAME: pixel_array})
    device = torch.device(request["device"])
    dtype = getattr(torch, request["dtype"])
    model = build_model(ModelSpec.from_json(request["spec"]), device, dtype)
    pixel_values = torch.randn(shape, device=device, dtype=dtype)

    def forward() -> None:
        with torch.inference_mode():
            model(pixel_values=pixel_values)

    return forward


def _measure(request: dict[str, Any]) -> MemoryResult:
    """Build the model (or load the graph), then time and measure a first and a steady-state forward call."""
    device = torch.device(request["device"])
    torch.set_num_threads(request["threads"])
    forward = _forward(request)
    synchronize(device)

    current: Callable[[], int]
    peak: Callable[[], int]
    reset: Callable[[], bool]
    if device.type == "cuda":
        current, peak = (lambda: torch.cuda.memory_allocated(device)), (lambda: torch.cuda.max_memory_allocated(device))

        def reset() -> bool:
            torch.cuda.reset_peak_memory_stats(device)
            return True

        metric = "torch.cuda.max_memory_allocated"
        reset()
    else:
        current, peak, reset, metric = _current_rss, _peak_rss, _reset_peak_rss, "peak RSS (VmHWM)"
    after_build = current()
    result = MemoryResult(status="ok", metric=metric, after_build_mib=after_build / _MIB)

    def call() -> float:
        start = time.perf_counter()
        forward()
        synchronize(device)
        return time.perf_counter() - start

    try:
        result.first_call_s = call()
        result.peak_mib = peak() / _MIB
        result.peak_delta_mib = (peak() - after_build) / _MIB
        if reset():
            result.steady_call_s = call()
            result.steady_peak_mib = peak() / _MIB
            result.steady_delta_mib = (peak() - after_build) / _MIB
    except Exception as error:  # noqa: BLE001 - report any failure (chiefly OOM) as the configuration's status
        result.status = describe_error(error)
    return result


def main(argv: list[str]) -> None:
    request = json.loads(argv[1])
    if request.get("memory_limit_bytes"):
        limit = int(request["memory_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = _measure(request)
    print(RESULT_MARKER + json.dumps(asdict(result)), flush=True)


def _failure_status(returncode: int, stderr: str) -> str:
    """Why a child ended without a result line: killed by a signal, out of memory, or another error."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"killed ({name}, likely out of memory)" if name == "SIGKILL" else f"killed ({name})"
    if "can't allocate memory" in stderr or "MemoryError" in stderr or "OutOfMemoryError" in stderr:
        return "OOM"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"error: {lines[-1][:200]}" if lines else f"error: exit status {returncode}"


def probe_memory(
    spec: ModelSpec,
    height: int,
    width: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    timeout_s: float,
    memory_limit_gib: float | None,
) -> MemoryResult:
    """Run one configuration in a fresh child process, bounded by `timeout_s` and (CPU) `memory_limit_gib`."""
    request = {
        "spec": spec.to_json(),
        "height": height,
        "width": width,
        "batch_size": batch_size,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "memory_limit_bytes": int(memory_limit_gib * 2**30) if memory_limit_gib and device.type == "cpu" else None,
    }
    return _run_child(request, timeout_s)


def probe_onnx_memory(
    onnx_path: str | Path,
    height: int,
    width: int,
    batch_size: int,
    timeout_s: float,
    memory_limit_gib: float | None,
) -> MemoryResult:
    """`probe_memory` for an exported graph on onnxruntime (CPU, float32, as many threads as this process).

    The child imports the same modules as a PyTorch probe's, so both start from the same resident set.
    """
    request = {
        "onnx_path": str(onnx_path),
        "height": height,
        "width": width,
        "batch_size": batch_size,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "memory_limit_bytes": int(memory_limit_gib * 2**30) if memory_limit_gib else None,
    }
    return _run_child(request, timeout_s)


def _run_child(request: dict[str, Any], timeout_s: float) -> MemoryResult:
    """Measure `request` in a fresh child process (its own session, killed whole on timeout)."""
    package_parent = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    # A session of its own, so that on timeout the whole group (compile workers included) can be killed.
    child = subprocess.Popen(
        [sys.executable, "-m", "segret_bench.memory", json.dumps(request)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return MemoryResult(status=f"timeout (>{timeout_s:g} s)")
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return MemoryResult(**json.loads(line[len(RESULT_MARKER) :]))
    return MemoryResult(status=_failure_status(child.returncode, stderr))


if __name__ == "__main__":
    main(sys.argv)
