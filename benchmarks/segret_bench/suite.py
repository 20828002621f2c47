"""The benchmark phases and how they are combined into one result document.

Per image size: parameters and FLOPs, a memory probe per configuration (fresh subprocess, see `memory.py`),
then latency (batch 1) and throughput (`batch_size`) of all models interleaved in this process; finally one
training-step phase. Every timing row carries its ratios to the reference baseline (SegFormer-B2), to the
same SegRet variant's `eager` implementation, and for torch.compile rows the gain over eager-mode `sdpa`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from .environment import describe_environment, load
from .flops import FLOP_METHOD, count_parameters_and_flops
from .memory import MEMORY_METHOD, MemoryResult, probe_memory
from .models import ModelSpec, build_model, segformer_spec, segret_spec
from .timing import TIMING_METHOD, Timing, describe_error, time_interleaved, timing_settings

REFERENCE = "segformer-b2"
# The headline comparison (`--quick`): SegRet-tiny against SegFormer-B2, forward at 2x3x512x512.
HEADLINE_BATCH, HEADLINE_SIZE = 2, (512, 512)

Size = tuple[int, int]
Log = Callable[[str], None]


@dataclass
class SuiteOptions:
    """What to measure and how; `run_benchmarks.py` fills it from the command line."""

    specs: list[ModelSpec]
    sizes: list[Size]
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    repeats: int
    warmup: int
    skip_memory: bool = False
    skip_throughput: bool = False
    skip_training: bool = False
    train_size: Size = (512, 512)
    train_batch_size: int = 2
    memory_timeout_s: float = 300.0
    memory_limit_gib: float | None = 16.0
    max_call_s: float | None = None


def format_size(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def build_specs(
    variants: list[str], implementations: list[str], baselines: list[str], compile_implementations: list[str]
) -> list[ModelSpec]:
    """SegRet variant x implementation rows (plus torch.compile rows), then the SegFormer baselines."""
    specs = [segret_spec(v, impl) for v in variants for impl in implementations]
    specs += [segret_spec(v, impl, compiled=True) for v in variants for impl in compile_implementations]
    return specs + [segformer_spec(name) for name in baselines]


def _model_name(spec: ModelSpec) -> str:
    """The architecture, independent of implementation: FLOPs and parameters are shared by its rows."""
    return f"{spec.family}-{spec.name}"


def measure_static(specs: list[ModelSpec], sizes: list[Size]) -> list[dict[str, Any]]:
    """Parameters and GFLOPs per image of each architecture at each size."""
    rows, seen = [], set()
    for spec in specs:
        name = _model_name(spec)
        if name in seen:
            continue
        seen.add(name)
        row: dict[str, Any] = {"model": name, "gflops_per_image": {}}
        for size in sizes:
            row["parameters"], row["gflops_per_image"][format_size(size)] = count_parameters_and_flops(spec, *size)
        rows.append(row)
    return rows


def timing_row(spec: ModelSpec, phase: str, size: Size, batch_size: int, timing: Timing) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": spec.label,
        "family": spec.family,
        "name": spec.name,
        "implementation": spec.implementation,
        "compiled": spec.compiled,
        "phase": phase,
        "size": format_size(size),
        "batch_size": batch_size,
        "status": timing.status,
        "first_call_s": timing.first_call_s,
        "min_s": timing.min_s,
        "median_s": timing.median_s,
        "times_s": timing.times_s,
    }
    if timing.times_s:
        row["images_per_s"] = batch_size / timing.median_s
        row["images_per_s_best"] = batch_size / timing.min_s
    return row


def _ratio(row: dict[str, Any], other: dict[str, Any] | None, key: str) -> float | None:
    if other is None or row.get(key) is None or other.get(key) is None:
        return None
    return row[key] / other[key]


def paired_ratio(row: dict[str, Any], other: dict[str, Any] | None) -> float | None:
    """Median over rounds of this row's time / the other's time in the same round.

    Both calls of a round run seconds apart, so a load change that lasts longer than a round cancels out in
    their quotient; this is the least noise-sensitive of the three ratios.
    """
    if other is None or not row.get("times_s") or len(row["times_s"]) != len(other.get("times_s") or []):
        return None
    return statistics.median(a / b for a, b in zip(row["times_s"], other["times_s"]))


def add_ratios(rows: list[dict[str, Any]], reference: str = REFERENCE) -> None:
    """Time ratios within each (phase, size, batch): vs the reference, vs eager, and compile gain vs sdpa.

    Ratios < 1 mean faster than the reference / eager; `compile_speedup` > 1 means torch.compile helped.
    """
    by_key = {(r["phase"], r["size"], r["batch_size"], r["model"]): r for r in rows}
    for row in rows:
        group = (row["phase"], row["size"], row["batch_size"])
        ref = by_key.get((*group, reference))
        row["ratio_vs_reference"] = _ratio(row, ref, "median_s")
        row["ratio_vs_reference_min"] = _ratio(row, ref, "min_s")
        row["ratio_vs_reference_paired"] = paired_ratio(row, ref)
        if row["family"] != "segret":
            continue
        eager = by_key.get((*group, f"segret-{row['name']}/eager"))
        row["ratio_vs_eager"] = _ratio(row, eager, "median_s")
        row["ratio_vs_eager_min"] = _ratio(row, eager, "min_s")
        row["ratio_vs_eager_paired"] = paired_ratio(row, eager)
        if row["compiled"]:
            sdpa = by_key.get((*group, f"segret-{row['name']}/sdpa"))
            row["compile_speedup"] = _ratio(sdpa, row, "median_s") if sdpa else None
            row["compile_speedup_paired"] = paired_ratio(sdpa, row) if sdpa else None


def _inference_step(model: torch.nn.Module, pixel_values: torch.Tensor) -> Callable[[], object]:
    def step() -> object:
        with torch.inference_mode():
            return model(pixel_values=pixel_values)

    return step


def measure_inference(
    specs: list[ModelSpec],
    models: dict[str, torch.nn.Module],
    phase: str,
    size: Size,
    batch_size: int,
    options: SuiteOptions,
    skipped: dict[str, str],
    log: Log,
) -> list[dict[str, Any]]:
    """Interleaved forward timing of every model not in `skipped` (label -> reason) on one shared input."""
    torch.manual_seed(0)
    pixel_values = torch.randn(batch_size, 3, *size, device=options.device, dtype=options.dtype)
    steps = {s.label: _inference_step(models[s.label], pixel_values) for s in specs if s.label not in skipped}
    log(f"{phase}: batch {batch_size} at {format_size(size)}, {len(steps)} models")
    timings = time_interleaved(steps, options.warmup, options.repeats, options.device, log)
    rows = []
    for spec in specs:
        timing = timings.get(spec.label) or Timing(status=skipped[spec.label])
        rows.append(timing_row(spec, phase, size, batch_size, timing))
    return rows


def training_step(
    model: torch.nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor, autocast_dtype: torch.dtype | None
) -> Callable[[], object]:
    """Forward with loss, backward, AdamW step: one optimisation step as a training loop would do it."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(pixel_values.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


# Called with a timed row, its model and its step, after all rounds: to add measurements that need the model.
RowInspector = Callable[[dict[str, Any], torch.nn.Module, Callable[[], object]], None]


def measure_training(
    specs: list[ModelSpec], options: SuiteOptions, log: Log, inspect: RowInspector | None = None
) -> list[dict[str, Any]]:
    """Interleaved training-step timing; fp32 weights, with autocast to `dtype` when that is half precision.

    torch.compile rows are left out: compiling the backward graph costs minutes and is a separate question.
    """
    specs = [s for s in specs if not s.compiled]
    size, batch = options.train_size, options.train_batch_size
    autocast_dtype = None if options.dtype == torch.float32 else options.dtype
    torch.manual_seed(0)
    pixel_values = torch.randn(batch, 3, *size, device=options.device)
    steps, models, failed = {}, {}, {}
    for spec in specs:
        try:
            model = models[spec.label] = build_model(spec, options.device, torch.float32, train=True)
            labels = torch.randint(0, model.config.num_labels, (batch, *size), device=options.device)
            steps[spec.label] = training_step(model, pixel_values, labels, autocast_dtype)
        except Exception as error:  # noqa: BLE001 - a model that cannot be built is reported, not fatal
            failed[spec.label] = describe_error(error)
    log(f"training: batch {batch} at {format_size(size)}, {len(steps)} models")
    timings = time_interleaved(steps, options.warmup, options.repeats, options.device, log)
    rows = []
    for spec in specs:
        timing = timings.get(spec.label) or Timing(status=failed[spec.label])
        rows.append(timing_row(spec, "training", size, batch, timing))
        if inspect is not None and timing.times_s:
            inspect(rows[-1], models[spec.label], steps[spec.label])
    return rows


def _memory_row(spec: ModelSpec, size: Size, result: MemoryResult) -> dict[str, Any]:
    return {"model": spec.label, "size": format_size(size), "batch_size": 1, **asdict(result)}


def _skip_reason(result: MemoryResult, max_call_s: float | None) -> str | None:
    """Why a configuration is not timed in-process, judging from its memory probe (None: time it)."""
    if result.status != "ok":
        return f"skipped: memory probe {result.status}"
    call_s = result.steady_call_s if result.steady_call_s is not None else result.first_call_s
    if max_call_s is not None and call_s is not None and call_s > max_call_s:
        return f"skipped: probe call {call_s:.1f} s > --max_call_s {max_call_s:g}"
    return None


def _probe_size(
    options: SuiteOptions, size: Size, results: dict[str, Any], log: Log
) -> dict[str, str]:
    """Memory probes of every eager-mode configuration at `size`; returns the labels not to time in-process."""
    skipped: dict[str, str] = {}
    for spec in options.specs:
        if spec.compiled:  # compiling again in every child would cost minutes for the same eager-mode memory
            continue
        log(f"memory probe: {spec.label} at {format_size(size)}")
        result = probe_memory(
            spec, *size, 1, options.device, options.dtype, options.memory_timeout_s, options.memory_limit_gib
        )
        log(f"  {result.status}, peak {result.peak_mib or 0:.0f} MiB, first call {result.first_call_s or 0:.2f} s")
        results["memory"].append(_memory_row(spec, size, result))
        reason = _skip_reason(result, options.max_call_s)
        if reason is not None:
            skipped[spec.label] = reason
    # A compiled model needs what its eager-mode counterpart needs.
    for spec in options.specs:
        eager_mode = replace(spec, compiled=False).label
        if spec.compiled and eager_mode in skipped:
            skipped[spec.label] = skipped[eager_mode]
    return skipped


def run_suite(
    options: SuiteOptions, log: Log = print, save: Callable[[dict[str, Any]], None] = lambda results: None
) -> dict[str, Any]:
    """All phases for all sizes; returns the result document (see `report.py` for its rendering).

    `save` is called with the document after every phase, so that an interrupted run keeps what it measured.
    """
    results: dict[str, Any] = {
        "kind": "suite",
        "environment": describe_environment(options.device),
        "settings": timing_settings(
            options.dtype,
            options.repeats,
            options.warmup,
            batch_size=options.batch_size,
            train=f"batch {options.train_batch_size} at {format_size(options.train_size)}",
            memory_timeout_s=options.memory_timeout_s,
            memory_limit_gib=options.memory_limit_gib,
            max_call_s=options.max_call_s,
        ),
        "method": {"timing": TIMING_METHOD, "flops": FLOP_METHOD},
        "static": measure_static(options.specs, options.sizes),
        "memory": [],
        "timings": [],
    }
    if not options.skip_memory:
        results["method"]["memory"] = MEMORY_METHOD.format(
            limit=f"{options.memory_limit_gib:g} GiB" if options.memory_limit_gib else "unset",
            timeout=f"{options.memory_timeout_s:g} s",
        )

    def phase_done(rows: list[dict[str, Any]]) -> None:
        results["timings"] += rows
        add_ratios(results["timings"])
        results["environment"]["load_end"] = load()
        save(results)

    models = {s.label: build_model(s, options.device, options.dtype) for s in options.specs}
    for size in options.sizes:
        skipped = {} if options.skip_memory else _probe_size(options, size, results, log)
        phase_done(measure_inference(options.specs, models, "latency", size, 1, options, skipped, log))
        if not options.skip_throughput:
            batch = options.batch_size
            phase_done(measure_inference(options.specs, models, "throughput", size, batch, options, skipped, log))
    del models
    if not options.skip_training:
        phase_done(measure_training(options.specs, options, log))
    return results


def headline_summary(rows: list[dict[str, Any]], target: float | None = None) -> dict[str, Any]:
    """The headline's ratios from its two timing rows (SegRet-tiny first, then the reference), with `add_ratios` done.

    `target` is an optional ratio to compare with: `below_target` says whether the paired ratio, the one least
    moved by other jobs' load (see `paired_ratio`), is below it. Without a target there is no comparison.
    """
    tiny = rows[0]
    paired = tiny["ratio_vs_reference_paired"]
    return {
        "model": tiny["model"],
        "reference": REFERENCE,
        "input": f"{HEADLINE_BATCH}x3x{format_size(HEADLINE_SIZE)}",
        "ratio_median": tiny["ratio_vs_reference"],
        "ratio_min": tiny["ratio_vs_reference_min"],
        "ratio_paired": paired,
        "target": target,
        "below_target": None if target is None or paired is None else paired < target,
    }


def run_headline(
    device: torch.device,
    dtype: torch.dtype,
    repeats: int,
    warmup: int,
    log: Log = print,
    target: float | None = None,
) -> dict[str, Any]:
    """SegRet-tiny (sdpa) vs SegFormer-B2 forward at 2x3x512x512, interleaved in one process: times and ratios.

    With `target`, the result also says whether the paired ratio is below it (see `headline_summary`).
    """
    environment = describe_environment(device)
    specs = [segret_spec("tiny", "sdpa"), segformer_spec("b2")]
    options = SuiteOptions(specs, [HEADLINE_SIZE], device, dtype, HEADLINE_BATCH, repeats, warmup)
    models = {s.label: build_model(s, device, dtype) for s in specs}
    rows = measure_inference(specs, models, "headline", HEADLINE_SIZE, HEADLINE_BATCH, options, {}, log)
    add_ratios(rows)
    environment["load_end"] = load()
    return {
        "kind": "headline",
        "environment": environment,
        "settings": timing_settings(dtype, repeats, warmup),
        "method": {"timing": TIMING_METHOD},
        "timings": rows,
        "headline": headline_summary(rows, target),
    }
