"""What a result was measured on and with: recorded next to every number, since timings mean nothing without it."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from typing import Any

import torch
import transformers


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> dict[str, Any]:
    """CPU model and thread counts always (the host matters on CUDA too: it runs the Python side); GPU name on CUDA."""
    description: dict[str, Any] = {
        "type": device.type,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        description["gpu_name"] = torch.cuda.get_device_name(device)
        description["cuda_version"] = torch.version.cuda
    return description


def device_slug(description: dict[str, Any]) -> str:
    """Short file-name-safe device name: `cpu-<threads>t` (`cpu-2t`) or `cuda-<gpu>` (`cuda-nvidia-h100-80gb-hbm3`).

    The CPU model is left out of the name (it is recorded inside each result file): on a CPU, the thread count is
    what changes the figures from one run configuration to the next.
    """
    if description["type"] == "cuda":
        words = "".join(c if c.isalnum() else " " for c in description["gpu_name"].lower()).split()
        return "-".join(["cuda", *words])
    return f"{description['type']}-{description['torch_threads']}t"


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: on a shared machine they say how much the timings were disturbed."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def cpu_pressure() -> dict[str, float] | None:
    """Linux PSI 'some' CPU pressure (% of time runnable tasks waited for a CPU, over 10 s / 60 s / 300 s).

    A better witness of contention than the load average: on a shared 2-core machine, two-thread runs were up
    to 5x slower while it was high (see benchmarks/README.md, "Noise").
    """
    try:
        with open("/proc/pressure/cpu", encoding="utf-8") as handle:
            fields = handle.readline().split()[1:4]
    except OSError:
        return None
    return {key: float(value) for key, value in (field.split("=") for field in fields)}


def load() -> dict[str, Any]:
    return {"load_average": load_average(), "cpu_pressure": cpu_pressure()}


def describe_environment(device: torch.device) -> dict[str, Any]:
    """Date, device, library versions, the exact command line and the machine's load at the start of the run."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_start": load(),
        "device": describe_device(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    }
