"""Smoke tests of the benchmark suite (benchmarks/segret_bench): tiny models at tiny sizes, structure only.

Timings on a shared CPU are noise at this size, so no test asserts a measured time or ratio; they check that
every phase runs, that failures become statuses, that the JSON and markdown carry what the README promises, and
the ratio arithmetic (and the optional --target comparison) on made-up times.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from segret_bench import cli, input_pipeline, suite  # noqa: E402
from segret_bench.environment import device_slug  # noqa: E402
from segret_bench.flops import count_parameters_and_flops  # noqa: E402
from segret_bench.memory import MemoryResult, probe_memory  # noqa: E402
from segret_bench.models import ModelSpec  # noqa: E402
from segret_bench.report import _headline_text, render_markdown, write_results  # noqa: E402

SEGRET_TINY = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [2, 2, 4, 4],
    "decoder_hidden_size": 16,
    "num_labels": 5,
}
SEGFORMER_TINY = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [1, 2, 4, 4],
    "sr_ratios": [8, 4, 2, 1],
    "decoder_hidden_size": 16,
    "num_labels": 5,
}
SIZE = (64, 64)


def segret(implementation: str, compiled: bool = False) -> ModelSpec:
    return ModelSpec("segret", "test", SEGRET_TINY, implementation, compiled)


# Named b2 so that it serves as the reference of the ratios, like the real SegFormer-B2.
REFERENCE = ModelSpec("segformer", "b2", SEGFORMER_TINY)


def options(**overrides) -> suite.SuiteOptions:
    values = {
        "specs": [segret("eager"), segret("sdpa"), REFERENCE],
        "sizes": [SIZE],
        "device": torch.device("cpu"),
        "dtype": torch.float32,
        "batch_size": 2,
        "repeats": 2,
        "warmup": 1,
        "skip_memory": True,
        "train_size": SIZE,
        **overrides,
    }
    return suite.SuiteOptions(**values)


@pytest.fixture(scope="module")
def suite_results() -> dict:
    return suite.run_suite(options(), log=lambda message: None)


def test_suite_rows_cover_every_phase_and_model(suite_results: dict) -> None:
    labels = ["segret-test/eager", "segret-test/sdpa", "segformer-b2"]
    phases = {(row["phase"], row["batch_size"]) for row in suite_results["timings"]}
    assert phases == {("latency", 1), ("throughput", 2), ("training", 2)}
    for phase in ("latency", "throughput", "training"):
        rows = [row for row in suite_results["timings"] if row["phase"] == phase]
        assert [row["model"] for row in rows] == labels
        for row in rows:
            assert row["status"] == "ok" and len(row["times_s"]) == 2 and row["first_call_s"] > 0
            assert row["min_s"] <= row["median_s"]
            assert row["ratio_vs_reference"] is not None and row["ratio_vs_reference_min"] is not None
        assert rows[-1]["ratio_vs_reference"] == 1.0
        assert rows[0]["ratio_vs_eager"] == 1.0 and rows[1]["ratio_vs_eager"] is not None
    throughput = next(row for row in suite_results["timings"] if row["phase"] == "throughput")
    assert throughput["images_per_s"] == pytest.approx(2 / throughput["median_s"])


def test_static_counts_parameters_and_flops_per_architecture(suite_results: dict) -> None:
    static = {row["model"]: row for row in suite_results["static"]}
    assert set(static) == {"segret-test", "segformer-b2"}  # one row per architecture, not per implementation
    for row in static.values():
        assert row["parameters"] > 0 and row["gflops_per_image"]["64x64"] > 0


def test_flops_do_not_depend_on_the_implementation() -> None:
    counts = {impl: count_parameters_and_flops(segret(impl), *SIZE) for impl in ("eager", "sdpa", "flex_attention")}
    assert len(set(counts.values())) == 1


def test_results_files_have_environment_method_and_tables(suite_results: dict, tmp_path: Path) -> None:
    json_path, markdown_path = write_results(suite_results, tmp_path, "smoke")
    loaded = json.loads(json_path.read_text())
    threads = loaded["environment"]["device"]["torch_threads"]
    assert json_path.name == f"cpu-{threads}t_smoke.json"  # <device>_<tag>: no date, the date is inside
    assert markdown_path.stem == json_path.stem
    environment = loaded["environment"]
    for key in ("date", "command", "torch", "transformers", "load_start", "load_end"):
        assert key in environment
    assert set(environment["load_end"]) == {"load_average", "cpu_pressure"}
    assert environment["device"]["type"] == "cpu" and environment["device"]["torch_threads"] >= 1
    assert set(loaded["method"]) == {"timing", "flops"}
    markdown = markdown_path.read_text()
    for heading in (
        "## Method",
        "## Parameters and FLOPs",
        "### Latency, batch 1 at 64x64",
        "### Throughput, batch 2 at 64x64",
        "### Training step",
    ):
        assert heading in markdown
    assert markdown.count("| segret-test/sdpa |") == 3


def test_compile_gain_is_relative_to_eager_mode_sdpa() -> None:
    def row(model: str, name: str, implementation: str, compiled: bool, median: float) -> dict:
        family = model.split("-")[0]
        base = {"phase": "latency", "size": "64x64", "batch_size": 1, "model": model, "family": family}
        timing = {"median_s": median, "min_s": median, "times_s": [median, median]}
        return {**base, "name": name, "implementation": implementation, "compiled": compiled, **timing}

    rows = [
        row("segret-test/sdpa", "test", "sdpa", False, 2.0),
        row("segret-test/sdpa+compile", "test", "sdpa", True, 1.0),
        row("segformer-b2", "b2", "sdpa", False, 4.0),
    ]
    suite.add_ratios(rows)
    assert rows[1]["compile_speedup"] == 2.0 and rows[1]["compile_speedup_paired"] == 2.0
    assert rows[1]["ratio_vs_reference"] == 0.25 and rows[1]["ratio_vs_eager"] is None


def test_failed_or_slow_memory_probe_skips_in_process_timing() -> None:
    assert suite._skip_reason(MemoryResult(status="OOM"), None) == "skipped: memory probe OOM"
    slow = MemoryResult(status="ok", first_call_s=30.0, steady_call_s=12.0)
    assert suite._skip_reason(slow, 10.0).startswith("skipped: probe call 12.0 s")
    assert suite._skip_reason(slow, None) is None


def test_memory_probe_in_a_subprocess_reports_rss_and_call_times() -> None:
    result = probe_memory(segret("sdpa"), *SIZE, 1, torch.device("cpu"), torch.float32, 120, 16)
    assert result.status == "ok" and result.metric == "peak RSS (VmHWM)"
    assert result.peak_mib >= result.after_build_mib > 0
    assert result.peak_delta_mib == pytest.approx(result.peak_mib - result.after_build_mib)
    assert result.steady_delta_mib is not None and result.steady_call_s > 0


def test_memory_probe_timeout_is_a_status_not_a_hang() -> None:
    result = probe_memory(segret("sdpa"), *SIZE, 1, torch.device("cpu"), torch.float32, 0.5, 16)
    assert result.status == "timeout (>0.5 s)" and result.peak_mib is None


def test_result_file_names_carry_device_and_threads_not_the_cpu_model() -> None:
    cpu = {"type": "cpu", "cpu_model": "AMD EPYC 7B13", "cpu_count": 2, "torch_threads": 1}
    assert device_slug(cpu) == "cpu-1t"
    gpu = {**cpu, "type": "cuda", "gpu_name": "NVIDIA H100 80GB HBM3", "cuda_version": "13.0"}
    assert device_slug(gpu) == "cuda-nvidia-h100-80gb-hbm3"


def test_headline_reports_both_times_and_the_ratio_without_a_target(monkeypatch) -> None:
    monkeypatch.setattr(suite, "HEADLINE_SIZE", (64, 64))
    results = suite.run_headline(torch.device("cpu"), torch.float32, repeats=1, warmup=1, log=lambda message: None)
    assert [row["model"] for row in results["timings"]] == ["segret-tiny/sdpa", "segformer-b2"]
    head = results["headline"]
    assert head["input"] == "2x3x64x64" and head["target"] is None and head["below_target"] is None
    assert head["ratio_median"] == pytest.approx(results["timings"][0]["median_s"] / results["timings"][1]["median_s"])
    markdown = render_markdown(results)
    assert "## Headline" in markdown and "segret-tiny/sdpa" in markdown.split("## Method")[0]
    assert "target" not in markdown and "below" not in markdown


def _headline_rows(tiny_times: list[float], reference_times: list[float]) -> list[dict]:
    """Two timing rows as `measure_inference` makes them, then `add_ratios`, as `run_headline` does."""
    rows = []
    for model, name, times in (("segret-tiny/sdpa", "tiny", tiny_times), ("segformer-b2", "b2", reference_times)):
        family = model.split("-")[0]
        rows.append(
            {
                "model": model, "family": family, "name": name, "implementation": "sdpa", "compiled": False,
                "phase": "headline", "size": "512x512", "batch_size": 2, "status": "ok", "first_call_s": 1.0,
                "min_s": min(times), "median_s": sorted(times)[len(times) // 2], "times_s": times,
            }
        )  # fmt: skip
    suite.add_ratios(rows)
    return rows


def test_headline_target_compares_the_paired_ratio_only_when_given() -> None:
    # Per-round ratios 0.4, 0.5, 0.6: paired 0.5; medians 2.0 / 4.0 = 0.5; minima 1.0 / 2.0 = 0.5.
    rows = _headline_rows([1.0, 2.0, 3.0], [2.5, 4.0, 5.0])
    assert suite.headline_summary(rows)["ratio_paired"] == pytest.approx(0.5)
    assert suite.headline_summary(rows)["below_target"] is None
    assert suite.headline_summary(rows, target=0.6)["below_target"] is True
    assert suite.headline_summary(rows, target=0.5)["below_target"] is False  # "below" is strict
    assert suite.headline_summary(rows, target=0.45)["below_target"] is False
    # The paired ratio decides, not the medians: medians give 1.0 / 3.0, the rounds 0.8, 0.25 and 0.8.
    rows = _headline_rows([0.8, 1.0, 2.4], [1.0, 4.0, 3.0])
    head = suite.headline_summary(rows, target=0.5)
    assert head["ratio_median"] == pytest.approx(1 / 3) and head["ratio_paired"] == pytest.approx(0.8)
    assert head["below_target"] is False
    text = _headline_text({"timings": rows, "headline": head})
    assert "segret-tiny/sdpa 800 / 1000 ms (min / median)" in text and "segformer-b2 1000 / 3000 ms" in text
    assert text.endswith("The per-round ratio is not below `--target 0.5`.")
    text = _headline_text({"timings": rows, "headline": suite.headline_summary(rows, target=0.9)})
    assert text.endswith("The per-round ratio is below `--target 0.9`.")
    assert "target" not in _headline_text({"timings": rows, "headline": suite.headline_summary(rows)})


def test_cli_target_needs_quick_and_a_positive_ratio() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--quick"]).target is None
    assert parser.parse_args(["--quick", "--target", "0.5"]).target == 0.5
    cli._resolve(parser.parse_args(["--device", "cpu", "--quick", "--target", "0.5"]), parser)
    for argv in (["--device", "cpu", "--target", "0.5"], ["--device", "cpu", "--quick", "--target", "0"]):
        with pytest.raises(SystemExit):
            cli._resolve(parser.parse_args(argv), parser)


def test_cli_defaults_follow_the_device_and_reject_half_precision_on_cpu() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["--device", "cpu", "--sizes", "64x128", "--compile", "--baselines"])
    assert args.sizes == [(64, 128)] and args.compile == [] and args.baselines == []
    assert cli._resolve(args, parser) == {"batch_size": 2, "repeats": 5, "warmup": 1, "dtype": "float32"}
    with pytest.raises(SystemExit):
        cli._resolve(parser.parse_args(["--device", "cpu", "--dtype", "bfloat16"]), parser)
    assert parser.parse_args(["--sizes", "512"]).sizes == [(512, 512)]  # N means NxN, as in every CLI here
    with pytest.raises(SystemExit):
        parser.parse_args(["--sizes", "512x0"])


def test_input_pipeline_benchmark_runs_before_and_after(monkeypatch) -> None:
    """Tiny rows through both pipelines, per core and through a one-worker loader: structure, not speed."""
    tiny = input_pipeline.Case("tiny", 40, 56, "JPEG", 4, "ade20k", (32, 32), (128, 32))
    monkeypatch.setitem(input_pipeline.CASES, "tiny", tiny)
    options = input_pipeline.InputBenchmarkOptions(
        cases=["tiny"], rows=2, batch_size=2, repeats=1, warmup=1, workers=1, machine_samples=4
    )
    report = input_pipeline.run_input_benchmark(options, log=lambda message: None)
    rows = report["results"]
    assert [(row["scope"], row["variant"]) for row in rows] == [
        ("core (1 thread)", "before"), ("core (1 thread)", "after"),
        ("machine (1 workers)", "before"), ("machine (1 workers)", "after"),
    ]  # fmt: skip
    assert all(row["status"] == "ok" and row["samples_per_s"] > 0 for row in rows)
    assert rows[1]["speedup_paired"] > 0 and rows[0]["speedup_paired"] is None
    assert "| tiny | core (1 thread) | after |" in input_pipeline.render_input_markdown(report)
