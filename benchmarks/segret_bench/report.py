"""Result files: the JSON document as measured, and a markdown rendering of it for humans and the README."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .environment import device_slug

_PHASE_TITLES = {
    "headline": "Headline: forward time",
    "latency": "Latency",
    "throughput": "Throughput",
    "training": "Training step (forward + backward + AdamW), model.train()",
}


_METHOD_TITLES = {"timing": "Timing", "flops": "FLOPs", "memory": "Memory"}
_EMPTY = "–"


def format_number(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    return _EMPTY if value is None else f"{value * scale:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def environment_lines(results: dict[str, Any]) -> list[str]:
    env, settings = results["environment"], results["settings"]
    device = env["device"]
    where = f"{device['cpu_model']}, {device['cpu_count']} CPUs, {device['torch_threads']} torch threads"
    if device["type"] == "cuda":
        where = f"{device['gpu_name']} (CUDA {device['cuda_version']}); host {where}"
    return [
        f"- Date: {env['date']}",
        f"- Device: {device['type']} — {where}",
        f"- torch {env['torch']}, transformers {env['transformers']}, Python {env['python']}",
        f"- Settings: {', '.join(f'{k}={v}' for k, v in settings.items())}",
        f"- Command: `{env['command']}`",
        f"- Machine load at start: {_load(env, 'start')}; at end: {_load(env, 'end')}",
    ]


def _load(environment: dict[str, Any], when: str) -> str:
    load = environment[f"load_{when}"]
    pressure = load["cpu_pressure"]
    psi = "n/a" if pressure is None else f"{pressure['avg10']:.0f}% / {pressure['avg60']:.0f}%"
    return f"load average {load['load_average']}, CPU pressure (PSI some, 10 s / 60 s) {psi}"


def _timing_section(phase: str, rows: list[dict[str, Any]]) -> list[str]:
    """One timing table; ratio columns that are empty for every row (no B2, no eager, no compile) are left out."""
    first = rows[0]
    title = f"{_PHASE_TITLES[phase]}, batch {first['batch_size']} at {first['size']}"
    columns: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("model", lambda r: r["model"]),
        ("status", lambda r: r["status"]),
        ("first call (s)", lambda r: format_number(r["first_call_s"])),
        ("min (ms)", lambda r: format_number(r["min_s"], 0, 1e3)),
        ("median (ms)", lambda r: format_number(r["median_s"], 0, 1e3)),
    ]
    if phase in ("throughput", "headline"):
        columns += [
            ("images/s (median)", lambda r: format_number(r.get("images_per_s"))),
            ("images/s (best)", lambda r: format_number(r.get("images_per_s_best"))),
        ]
    optional: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("÷ B2 (median)", lambda r: format_number(r.get("ratio_vs_reference"))),
        ("÷ B2 (min)", lambda r: format_number(r.get("ratio_vs_reference_min"))),
        ("÷ B2 (paired)", lambda r: format_number(r.get("ratio_vs_reference_paired"))),
        ("÷ eager (median)", lambda r: format_number(r.get("ratio_vs_eager"))),
        ("÷ eager (paired)", lambda r: format_number(r.get("ratio_vs_eager_paired"))),
        ("compile gain vs sdpa (median)", lambda r: format_number(r.get("compile_speedup"))),
        ("compile gain vs sdpa (paired)", lambda r: format_number(r.get("compile_speedup_paired"))),
    ]
    columns += [(name, cell) for name, cell in optional if any(cell(r) != _EMPTY for r in rows)]
    table = [[cell(row) for _, cell in columns] for row in rows]
    return [f"### {title}", "", *markdown_table([name for name, _ in columns], table), ""]


def _timing_sections(timings: list[dict[str, Any]]) -> list[str]:
    """One table per (phase, size, batch), in the order measured."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in timings:
        groups.setdefault((row["phase"], row["size"], row["batch_size"]), []).append(row)
    lines = []
    for (phase, _, _), rows in groups.items():
        lines += _timing_section(phase, rows)
    return lines


def _static_section(static: list[dict[str, Any]]) -> list[str]:
    sizes = list(static[0]["gflops_per_image"]) if static else []
    header = ["model", "parameters (M)", *(f"GFLOPs/image @ {size}" for size in sizes)]
    rows = [
        [row["model"], format_number(row["parameters"], 2, 1e-6), *(format_number(row["gflops_per_image"][s], 1) for s in sizes)]
        for row in static
    ]
    return ["## Parameters and FLOPs", "", *markdown_table(header, rows), ""]


def _memory_section(memory: list[dict[str, Any]]) -> list[str]:
    metric = next((row["metric"] for row in memory if row["metric"]), "peak")
    header = [
        "model",
        "size",
        "status",
        "after build (MiB)",
        "peak, first call (MiB)",
        "peak − build (MiB)",
        "steady peak − build (MiB)",
        "first call (s)",
        "steady call (s)",
    ]
    rows = [
        [
            row["model"],
            row["size"],
            row["status"],
            format_number(row["after_build_mib"], 0),
            format_number(row["peak_mib"], 0),
            format_number(row["peak_delta_mib"], 0),
            format_number(row["steady_delta_mib"], 0),
            format_number(row["first_call_s"]),
            format_number(row["steady_call_s"]),
        ]
        for row in memory
    ]
    return [f"## Memory, batch 1 ({metric}, fresh subprocess per row)", "", *markdown_table(header, rows), ""]


def _headline_text(results: dict[str, Any]) -> str:
    """Both models' times and the three ratios; a comparison with a target only when the run was given one."""
    head = results["headline"]
    rows = {row["model"]: row for row in results["timings"]}

    def times(model: str) -> str:
        row = rows.get(model)
        if row is None or row["status"] != "ok":
            return f"{model} {row['status'] if row else 'not run'}"
        return f"{model} {format_number(row['min_s'], 0, 1e3)} / {format_number(row['median_s'], 0, 1e3)} ms (min / median)"

    text = (
        f"Forward at {head['input']}: {times(head['model'])}, {times(head['reference'])}. Time ratio "
        f"{format_number(head['ratio_median'])} (medians), {format_number(head['ratio_min'])} (minima), "
        f"{format_number(head['ratio_paired'])} (median of per-round ratios)."
    )
    if head.get("target") is not None and head.get("below_target") is not None:
        relation = "below" if head["below_target"] else "not below"
        text += f" The per-round ratio is {relation} `--target {head['target']:g}`."
    return text


def render_markdown(results: dict[str, Any]) -> str:
    """The whole result document as markdown: environment, method, then one table per measurement."""
    lines = ["# SegRet benchmark results", "", *environment_lines(results), ""]
    if "headline" in results:
        lines += ["## Headline", "", _headline_text(results), ""]
    lines += ["## Method", ""]
    lines += [f"- {_METHOD_TITLES[name]}: {text}" for name, text in results["method"].items()]
    lines += [
        "- Ratios are time ratios from the same rounds of the same process (< 1: faster than SegFormer-B2 / than "
        "eager): of medians, of minima, and 'paired' = median over rounds of the two calls' quotient in that round; "
        "compile gain = eager-mode sdpa time ÷ torch.compile time (of medians, and paired). 'first call' includes "
        "one-off compilation (flex_attention, torch.compile) and is excluded from min/median.",
        "",
    ]
    if results.get("static"):
        lines += _static_section(results["static"])
    if results.get("memory"):
        lines += _memory_section(results["memory"])
    lines += ["## Timings", "", *_timing_sections(results["timings"])]
    return "\n".join(lines)


def result_stem(results: dict[str, Any], tag: str) -> str:
    """`<device>_<tag>`, e.g. `cpu-2t_quick`: one file pair per device and configuration, rewritten by each run.

    No date in the name: the date, the machine and the command are recorded inside the file, and earlier runs of
    a configuration are in the repository's history.
    """
    return f"{device_slug(results['environment']['device'])}_{tag}"


def write_document(
    results: dict[str, Any], output_dir: Path, tag: str, render: Callable[[dict[str, Any]], str]
) -> tuple[Path, Path]:
    """Write `<device>_<tag>.json` and its markdown rendering `.md` under `output_dir`; returns both paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = result_stem(results, tag)
    json_path, markdown_path = output_dir / f"{stem}.json", output_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render(results) + "\n", encoding="utf-8")
    return json_path, markdown_path


def write_results(results: dict[str, Any], output_dir: Path, tag: str) -> tuple[Path, Path]:
    """A comparison-suite or headline document as `<device>_<tag>.json` / `.md`."""
    return write_document(results, output_dir, tag, render_markdown)
