"""Check an exported graph against the PyTorch model it came from, on several sizes and a batch of two.

An export can go wrong without an error: a dimension fixed to the example's size, an operator translated with
other numerics, a branch taken at trace time that does not hold at other sizes. Each check feeds the same
random (seeded) pixel values to PyTorch and to onnxruntime and compares the logits; the sizes are chosen so that
every chunked attention loop of the graph runs several steps, its last one padded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .onnx_inference import INPUT_NAME, OUTPUT_NAME, inference_session

DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 128, 128), (1, 200, 328), (1, 512, 512), (2, 256, 384))
"""`(batch, height, width)` of the checks: three sizes (one not a multiple of 32) and a batch of two."""

FLOAT32_TOLERANCE = 1e-4
"""Largest absolute logit difference accepted for a float32 graph (observed: about 1e-6 on trained models)."""

FLOAT16_RELATIVE_TOLERANCE = 1e-2
"""For a float16 graph, compared with the float32 PyTorch model: this fraction of the largest absolute logit
(float16 keeps 11 significant bits, and rounding accumulates over the network's depth)."""


@dataclass(frozen=True)
class VerificationCheck:
    """One size: the largest logit difference, its limit, argmax agreement and one call's time on each side."""

    shape: tuple[int, int, int]
    max_abs_difference: float
    tolerance: float
    argmax_agreement: float
    torch_seconds: float
    onnxruntime_seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.max_abs_difference <= self.tolerance

    def describe(self) -> str:
        batch, height, width = self.shape
        if self.error is not None:
            return f"{batch}x3x{height}x{width}: {self.error}  FAILED"
        return (
            f"{batch}x3x{height}x{width}: max |difference| {self.max_abs_difference:.2e} (limit {self.tolerance:.1e}), "
            f"argmax agreement {100 * self.argmax_agreement:.2f}%, PyTorch {1000 * self.torch_seconds:.0f} ms, "
            f"onnxruntime {1000 * self.onnxruntime_seconds:.0f} ms" + ("" if self.passed else "  FAILED")
        )


def tolerance(graph_dtype: torch.dtype, reference: np.ndarray) -> float:
    """The largest logit difference accepted for a graph in `graph_dtype` against float32 `reference` logits."""
    if graph_dtype == torch.float32:
        return FLOAT32_TOLERANCE
    return FLOAT16_RELATIVE_TOLERANCE * max(1.0, float(np.abs(reference).max()))


def _seconds(call: Callable[[torch.Tensor], object], pixel_values: torch.Tensor) -> float:
    start = time.perf_counter()
    call(pixel_values)
    return time.perf_counter() - start


def verify_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    graph_dtype: torch.dtype = torch.float32,
    shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES,
) -> list[VerificationCheck]:
    """Compare the float32 PyTorch `model` (its `.logits`) with the graph at `onnx_path`, one check per shape.

    Times are of a second call at each size (the first one prepares kernels for it, on both sides). A graph that
    onnxruntime cannot run at a size, or that returns another shape, fails that check with the reason.
    """
    session = inference_session(onnx_path, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch, 3, height, width, generator=generator) for batch, height, width in shapes]
    numpy_dtype = np.float16 if graph_dtype == torch.float16 else np.float32

    def run_torch(pixel_values: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(pixel_values=pixel_values).logits.float().numpy()

    def run_onnx(pixel_values: torch.Tensor) -> np.ndarray:
        feed = {INPUT_NAME: pixel_values.numpy().astype(numpy_dtype)}
        return session.run([OUTPUT_NAME], feed)[0].astype(np.float32)

    checks = []
    for shape, pixel_values in zip(shapes, inputs):
        reference = run_torch(pixel_values)  # the first call at a size also prepares kernels: timed is the second
        torch_seconds = _seconds(run_torch, pixel_values)
        logits, error, onnxruntime_seconds = None, None, math.nan
        try:
            logits = run_onnx(pixel_values)
            onnxruntime_seconds = _seconds(run_onnx, pixel_values)
        except Exception as failure:  # noqa: BLE001 - onnxruntime's errors, e.g. a dimension fixed at export
            error = f"{type(failure).__name__}: {failure}"
        if logits is not None and logits.shape != reference.shape:
            error = f"logits of shape {logits.shape}, PyTorch {reference.shape}"
        checks.append(
            VerificationCheck(
                shape=tuple(shape),
                max_abs_difference=math.inf if error else float(np.abs(logits - reference).max()),
                tolerance=tolerance(graph_dtype, reference),
                argmax_agreement=0.0 if error else float((logits.argmax(1) == reference.argmax(1)).mean()),
                torch_seconds=torch_seconds,
                onnxruntime_seconds=onnxruntime_seconds,
                error=error,
            )
        )
    return checks


__all__ = ["DEFAULT_SHAPES", "VerificationCheck", "tolerance", "verify_onnx"]
