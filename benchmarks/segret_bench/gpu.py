"""The GPU report: correctness, speed, model FLOP utilisation and memory of SegRet on one CUDA device.

One process runs the steps in order of importance and writes the result document after each, so a run cut
short (time limit, lost machine) still leaves what it measured:

1. `peak`: the device's measured bf16 matrix-product rate (8192^3 products), the denominator of the measured
   utilisation next to the datasheet's.
2. `correctness`: the shared fixture network (original-implementation outputs) under every attention
   implementation in fp32; then fixed random inputs through a randomised network (no zero-initialised layer left
   at zero, BatchNorm statistics spread) against a float64 CPU reference, for fp32 with and without TF32, fp16
   and bf16 weights and bf16 autocast: maximum and relative error, and the agreement of the per-pixel argmax,
   which is what mIoU sees.
3. `forward`: images/s of every model at each (size, batch), interleaved in one process (`timing.py`), then one
   more call per model for the peak memory above what was resident before it (`max_memory_allocated`).
4. `training`: forward + backward + AdamW step with fp32 weights under autocast, same timing and memory.
5. `flex_attention` and `compile`: each configuration timed against eager-mode `sdpa` of the same variant in
   the same rounds (paired ratio); the first call, which compiles, is reported on its own.

Utilisation = counted FLOPs (`flops.py`; training counted as 3x the forward) x images/s / peak rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from segret_hf.conversion import config_from_architecture, convert, load_original_checkpoint

from .environment import describe_environment, load
from .flops import FLOP_METHOD, count_parameters_and_flops
from .models import ModelSpec, build_model
from .report import environment_lines, format_number, markdown_table, write_document
from .suite import SuiteOptions, add_ratios, format_size, measure_inference, measure_training, paired_ratio
from .timing import TIMING_METHOD, describe_error, synchronize, timing_settings

Size = tuple[int, int]
Log = Callable[[str], None]
_MIB = 2**20
# Dense bf16 tensor-core peak of the H100 and H200 SXM (NVIDIA's datasheets, without sparsity).
DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4}
FIXTURE_TOLERANCE = 1e-4


# The report's steps in the order they run; "forward" stands for one step per forward shape.
STEPS = ("peak", "correctness", "flops", "forward", "training", "flex_attention", "compile")


@dataclass
class GpuOptions:
    """What the report measures; `benchmarks/gpu_report.py` fills it from the command line."""

    device: torch.device
    forward_specs: list[ModelSpec]
    training_specs: list[ModelSpec]
    flex_specs: list[ModelSpec]
    compile_specs: list[ModelSpec]
    correctness_specs: list[ModelSpec]
    forward_shapes: list[tuple[Size, int]]  # (size, batch)
    training_shape: tuple[Size, int]
    correctness_shape: tuple[Size, int]
    dtype: torch.dtype = torch.bfloat16
    repeats: int = 10
    warmup: int = 3
    budget_s: float = float("inf")
    steps: tuple[str, ...] = STEPS
    fixtures: Path | None = None
    implementations: tuple[str, ...] = ("eager", "sdpa", "flex_attention")
    matmul_size: int = 8192
    started: float = field(default_factory=time.perf_counter)

    def time_left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)


# ---------------------------------------------------------------------------------------------------- peak rate


def measure_matmul_tflops(device: torch.device, size: int, repeats: int = 10) -> float | None:
    """bf16 matrix-product rate on random data (CUDA only): the ceiling this device reaches in practice."""
    if device.type != "cuda":
        return None
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize(device)
    seconds = start.elapsed_time(end) / 1e3 / repeats
    return 2 * size**3 / seconds / 1e12


def datasheet_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in DATASHEET_BF16_TFLOPS.items() if key in name), None)


# --------------------------------------------------------------------------------------------------- correctness


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for matrix products and convolutions on or off, restored afterwards (fp32 on CUDA uses it by default
    for convolutions, which moves results by about 1e-3)."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@dataclass(frozen=True)
class Precision:
    """One numeric setting: fp32 with TF32 on or off, half-precision weights, or fp32 weights under autocast."""

    name: str
    weights: torch.dtype
    autocast: torch.dtype | None = None
    tf32: bool = False

    def logits(self, model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """float64 logits of a copy of `model` cast to this setting's weights (the model itself is untouched)."""
        copy = deepcopy(model).to(self.weights)
        enabled = self.autocast is not None
        with tf32(self.tf32), torch.inference_mode(), torch.autocast(
            pixel_values.device.type, self.autocast or torch.bfloat16, enabled=enabled
        ):
            return copy(pixel_values=pixel_values.to(self.weights)).logits.double()


PRECISIONS = (
    Precision("fp32", torch.float32),
    Precision("fp32+tf32", torch.float32, tf32=True),
    Precision("bf16 autocast", torch.float32, autocast=torch.bfloat16),
    Precision("bf16", torch.bfloat16),
    Precision("fp16", torch.float16),
)


def _errors(logits: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    logits, reference = logits.cpu(), reference.cpu()
    return {
        "max_abs_diff": (logits - reference).abs().max().item(),
        "relative_error": ((logits - reference).norm() / reference.norm()).item(),
        "argmax_agreement": (logits.argmax(1) == reference.argmax(1)).double().mean().item(),
    }


def fixture_rows(fixtures: Path, device: torch.device, implementations: Iterable[str]) -> list[dict[str, Any]]:
    """The original implementation's logits and stage features against ours on `device`, fp32 without TF32."""
    expected = load_file(fixtures / "tiny_a_expected.safetensors")
    checkpoint = load_original_checkpoint(fixtures / "tiny_a_mmseg.pth")
    config = config_from_architecture(json.loads((fixtures / "tiny_a_architecture.json").read_text()))
    rows = []
    for implementation in implementations:
        row: dict[str, Any] = {"implementation": implementation}
        try:
            model = convert(checkpoint, config, implementation).model.to(device).eval()
            with tf32(False), torch.inference_mode():
                outputs = model(pixel_values=expected["pixel_values"].to(device), output_hidden_states=True)
            row["logits_max_abs_diff"] = (outputs.logits.cpu() - expected["logits"]).abs().max().item()
            row["hidden_states_max_abs_diff"] = max(
                (feature.cpu() - expected[f"hidden_state_{index}"]).abs().max().item()
                for index, feature in enumerate(outputs.hidden_states)
            )
            row["status"] = "ok" if row["logits_max_abs_diff"] <= FIXTURE_TOLERANCE else "above tolerance"
        except Exception as error:  # noqa: BLE001 - a failing implementation is a result, not the end of the report
            row["status"] = describe_error(error)
        rows.append(row)
    return rows


def randomise_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every zero-initialised weight and every default BatchNorm statistic a random value.

    A freshly initialised SegRet has zero residual branches in its decoder and BatchNorm statistics of exactly
    0 and 1, so half of the network would not show in its output; trained networks have neither.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if not tensor.is_floating_point():
                continue
            if bool((tensor == 0).all()):
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator))
            elif bool((tensor == 1).all()):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
    return model


def precision_rows(
    spec: ModelSpec, device: torch.device, size: Size, batch: int, implementations: Iterable[str]
) -> list[dict[str, Any]]:
    """Each (implementation, precision) on `device` against a float64 `eager` run on the CPU."""
    base = randomise_(build_model(replace(spec, implementation="eager"), torch.device("cpu"), torch.float64))
    pixel_values = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = base(pixel_values=pixel_values.double()).logits
    state = base.state_dict()
    rows = []
    for implementation in implementations:
        model = build_model(replace(spec, implementation=implementation), torch.device("cpu"), torch.float64)
        model.load_state_dict(state)
        model.to(device)
        for precision in PRECISIONS:
            if device.type != "cuda" and precision.weights != torch.float32:
                continue  # half-precision CPU kernels are not what this report is about
            row: dict[str, Any] = {
                "model": f"{spec.family}-{spec.name}", "implementation": implementation, "precision": precision.name
            }  # fmt: skip
            try:
                row.update(_errors(precision.logits(model, pixel_values.to(device)), reference), status="ok")
            except Exception as error:  # noqa: BLE001 - reported per row
                row["status"] = describe_error(error)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- speed and memory


def _peak_above_resident(step: Callable[[], object], device: torch.device) -> float | None:
    """MiB allocated at the peak of one call beyond what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / _MIB


def _weights_mib(model: torch.nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / _MIB


def forward_rows(
    specs: list[ModelSpec], size: Size, batch: int, options: GpuOptions, log: Log
) -> list[dict[str, Any]]:
    """Interleaved forward timing of `specs` on one shared input, then each model's peak memory above resident."""
    models, failed = {}, {}
    for spec in specs:
        try:
            models[spec.label] = build_model(spec, options.device, options.dtype)
        except Exception as error:  # noqa: BLE001
            failed[spec.label] = describe_error(error)
    suite_options = SuiteOptions(specs, [size], options.device, options.dtype, batch, options.repeats, options.warmup)
    rows = measure_inference(specs, models, "throughput", size, batch, suite_options, failed, log)
    torch.manual_seed(0)
    pixel_values = torch.randn(batch, 3, *size, device=options.device, dtype=options.dtype)
    for row in rows:
        model = models.get(row["model"])
        if model is None or row["status"] != "ok":
            continue
        row["weights_mib"] = _weights_mib(model)

        def call(model: torch.nn.Module = model) -> object:
            with torch.inference_mode():
                return model(pixel_values=pixel_values)

        row["peak_above_resident_mib"] = _peak_above_resident(call, options.device)
    return rows


def training_rows(specs: list[ModelSpec], options: GpuOptions, log: Log) -> list[dict[str, Any]]:
    """Training steps (fp32 weights, autocast to the report's dtype) timed interleaved, then memory per model."""
    (size, batch), device = options.training_shape, options.device
    suite_options = SuiteOptions(
        specs, [size], device, options.dtype, batch, options.repeats, options.warmup, train_size=size,
        train_batch_size=batch,
    )  # fmt: skip

    def inspect(row: dict[str, Any], model: torch.nn.Module, step: Callable[[], object]) -> None:
        row["images_per_s"] = batch / row["median_s"]
        row["weights_mib"] = _weights_mib(model)
        row["peak_above_resident_mib"] = _peak_above_resident(step, device)

    return measure_training(specs, suite_options, log, inspect)


def add_sdpa_ratios(rows: list[dict[str, Any]]) -> None:
    """Paired time ratio of each SegRet row to eager-mode `sdpa` of the same variant in the same rounds."""
    by_key = {(r["phase"], r["size"], r["batch_size"], r["model"]): r for r in rows}
    for row in rows:
        if row["family"] == "segret":
            sdpa = by_key.get((row["phase"], row["size"], row["batch_size"], f"segret-{row['name']}/sdpa"))
            row["ratio_vs_sdpa_paired"] = paired_ratio(row, sdpa)


def add_utilisation(rows: list[dict[str, Any]], gflops: dict[tuple[str, str], float], peaks: dict[str, float]) -> None:
    """Model FLOP utilisation of each timed row against each peak rate (training counts 3x the forward)."""
    for row in rows:
        per_image = gflops.get((f"{row['family']}-{row['name']}", row["size"]))
        if per_image is None or not row.get("images_per_s"):
            continue
        factor = 3 if row["phase"] == "training" else 1
        row["achieved_tflops"] = factor * per_image * row["images_per_s"] / 1e3
        for name, peak in peaks.items():
            row[f"utilisation_{name}"] = row["achieved_tflops"] / peak


def paired_rows(
    spec: ModelSpec, size: Size, batch: int, options: GpuOptions, log: Log, phase: str
) -> list[dict[str, Any]]:
    """`spec` timed in the same rounds as eager-mode `sdpa` of its variant: the paired ratio says what it gains."""
    baseline = replace(spec, implementation="sdpa", compiled=False, channels_last=False)
    rows = forward_rows([baseline, spec], size, batch, options, log)
    for row in rows:
        row["phase"] = phase
    return rows


# ------------------------------------------------------------------------------------------------------- the run


def run_report(options: GpuOptions, log: Log, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every step in order of importance, saving after each; steps past the time budget are recorded as skipped."""
    results: dict[str, Any] = {
        "kind": "gpu",
        "environment": describe_environment(options.device),
        "settings": timing_settings(
            options.dtype,
            options.repeats,
            options.warmup,
            forward=[f"batch {b} at {format_size(s)}" for s, b in options.forward_shapes],
            training=f"batch {options.training_shape[1]} at {format_size(options.training_shape[0])}",
        ),
        "method": {"timing": TIMING_METHOD, "flops": FLOP_METHOD},
        "steps": {},
        "peaks_tflops": {},
        "fixture": [],
        "precision": [],
        "static": [],
        "timings": [],
    }
    gflops: dict[tuple[str, str], float] = {}

    def step(name: str, work: Callable[[], None]) -> None:
        if name.split()[0] not in options.steps:
            return
        if options.time_left() <= 0:
            results["steps"][name] = "skipped: time budget spent"
        else:
            log(f"== {name}")
            start = time.perf_counter()
            try:
                work()
                results["steps"][name] = f"done in {time.perf_counter() - start:.0f} s"
            except Exception as error:  # noqa: BLE001 - later steps still run
                results["steps"][name] = describe_error(error)
        results["environment"]["load_end"] = load()
        save(results)

    def peak() -> None:
        peaks = {"datasheet": datasheet_tflops(options.device), "measured": None}
        peaks["measured"] = measure_matmul_tflops(options.device, options.matmul_size)
        results["peaks_tflops"] = {key: value for key, value in peaks.items() if value is not None}

    def correctness() -> None:
        if options.fixtures is not None:
            results["fixture"] = fixture_rows(options.fixtures, options.device, options.implementations)
        size, batch = options.correctness_shape
        for spec in options.correctness_specs:
            results["precision"] += precision_rows(spec, options.device, size, batch, options.implementations)

    def count_flops() -> None:
        sizes = {format_size(s): s for s, _ in [*options.forward_shapes, options.training_shape]}
        seen = set()
        for spec in [*options.forward_specs, *options.training_specs]:
            name = f"{spec.family}-{spec.name}"
            if name in seen:
                continue
            seen.add(name)
            row: dict[str, Any] = {"model": name, "gflops_per_image": {}}
            for label, size in sizes.items():
                row["parameters"], gflops[(name, label)] = count_parameters_and_flops(spec, *size)
                row["gflops_per_image"][label] = gflops[(name, label)]
            results["static"].append(row)

    def timed(rows: list[dict[str, Any]]) -> None:
        results["timings"] += rows
        add_ratios(results["timings"])
        add_sdpa_ratios(results["timings"])
        add_utilisation(results["timings"], gflops, results["peaks_tflops"])

    def each_paired(specs: list[ModelSpec], phase: str) -> Callable[[], None]:
        def work() -> None:
            for size, batch in options.forward_shapes:
                for spec in specs:
                    if options.time_left() <= 0:
                        results["steps"][f"{phase} {spec.label} {format_size(size)}"] = "skipped: time budget spent"
                        continue
                    timed(paired_rows(spec, size, batch, options, log, phase))
                    save(results)

        return work

    step("peak", peak)
    step("correctness", correctness)
    step("flops", count_flops)
    for size, batch in options.forward_shapes:
        step(f"forward {format_size(size)} batch {batch}", lambda s=size, b=batch: timed(
            forward_rows(options.forward_specs, s, b, options, log)))  # fmt: skip
    step("training", lambda: timed(training_rows(options.training_specs, options, log)))
    step("flex_attention", each_paired(options.flex_specs, "flex_attention"))
    step("compile", each_paired(options.compile_specs, "compile"))
    return results


# ---------------------------------------------------------------------------------------------------- rendering


def _scientific(value: float | None) -> str:
    return format_number(None) if value is None else f"{value:.1e}"


def _fixture_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [r["implementation"], r["status"], _scientific(r.get("logits_max_abs_diff")),
         _scientific(r.get("hidden_states_max_abs_diff"))]
        for r in rows
    ]  # fmt: skip
    header = ["implementation", "status", "logits max |diff|", "stage features max |diff|"]
    title = f"### Fixture network against the original implementation (fp32, TF32 off, tolerance {FIXTURE_TOLERANCE:g})"
    return [title, "", *markdown_table(header, table), ""]


def _precision_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [r["model"], r["implementation"], r["precision"], r["status"], _scientific(r.get("max_abs_diff")),
         _scientific(r.get("relative_error")), format_number(r.get("argmax_agreement"), 3, 100)]
        for r in rows
    ]  # fmt: skip
    header = ["model", "implementation", "precision", "status", "max |diff|", "relative error", "argmax agreement (%)"]
    title = "### Randomised network against a float64 CPU reference (eager)"
    return [title, "", *markdown_table(header, table), ""]


def _timing_section(title: str, rows: list[dict[str, Any]], peaks: dict[str, float]) -> list[str]:
    header = ["model", "status", "first call (s)", "median (ms)", "images/s", "TFLOP/s"]
    header += [f"utilisation vs {name} peak (%)" for name in peaks]
    header += ["÷ B2 (paired)", "÷ sdpa (paired)", "weights (MiB)", "peak above resident (MiB)"]
    table = []
    for r in rows:
        table.append(
            [r["model"], r["status"], format_number(r["first_call_s"]), format_number(r["median_s"], 1, 1e3),
             format_number(r.get("images_per_s"), 1), format_number(r.get("achieved_tflops"), 1)]
            + [format_number(r.get(f"utilisation_{name}"), 1, 100) for name in peaks]
            + [format_number(r.get("ratio_vs_reference_paired")), format_number(r.get("ratio_vs_sdpa_paired")),
               format_number(r.get("weights_mib"), 0), format_number(r.get("peak_above_resident_mib"), 0)]
        )  # fmt: skip
    return [f"### {title}", "", *markdown_table(header, table), ""]


def render_gpu_markdown(results: dict[str, Any]) -> str:
    """The report as markdown: environment, steps, correctness, FLOPs, then one table per timing group."""
    peaks = results["peaks_tflops"]
    lines = ["# SegRet on a GPU: correctness, speed and memory", "", *environment_lines(results), ""]
    lines += ["- Steps: " + "; ".join(f"{name}: {status}" for name, status in results["steps"].items())]
    lines += ["- Peak bf16 rates (TFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()), ""]
    lines += ["## Method", "", *(f"- {name}: {text}" for name, text in results["method"].items()), ""]
    lines += ["## Correctness", ""]
    if results["fixture"]:
        lines += _fixture_section(results["fixture"])
    if results["precision"]:
        lines += _precision_section(results["precision"])
    if results["static"]:
        sizes = list(results["static"][0]["gflops_per_image"])
        header = ["model", "parameters (M)", *(f"GFLOPs/image @ {s}" for s in sizes)]
        table = [[r["model"], format_number(r["parameters"], 2, 1e-6)]
                 + [format_number(r["gflops_per_image"][s], 1) for s in sizes] for r in results["static"]]  # fmt: skip
        lines += ["## Parameters and FLOPs", "", *markdown_table(header, table), ""]
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in results["timings"]:
        groups.setdefault((row["phase"], row["size"], row["batch_size"]), []).append(row)
    lines += ["## Timings and memory", ""]
    for (phase, size, batch), rows in groups.items():
        lines += _timing_section(f"{phase}, batch {batch} at {size}", rows, peaks)
    return "\n".join(lines)


def write_gpu_results(results: dict[str, Any], output_dir: Path, tag: str) -> tuple[Path, Path]:
    return write_document(results, output_dir, tag, render_gpu_markdown)
