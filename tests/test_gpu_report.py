"""The GPU report's machinery, run on the CPU with tiny models: every step, the fixture check, the precision
table's errors, utilisation arithmetic, the time budget and the result files. Never a timing."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from segret_bench import gpu, gpu_cli  # noqa: E402

from test_benchmarks import REFERENCE, SIZE, segret  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "original_checkpoints"


def options(**overrides) -> gpu.GpuOptions:
    values = {
        "device": torch.device("cpu"),
        "forward_specs": [segret("sdpa"), segret("eager"), replace(segret("sdpa"), channels_last=True), REFERENCE],
        "training_specs": [segret("sdpa"), REFERENCE],
        "flex_specs": [segret("eager")],  # any implementation exercises the paired path; flex would compile
        "compile_specs": [],
        "correctness_specs": [segret("sdpa")],
        "forward_shapes": [(SIZE, 2)],
        "training_shape": (SIZE, 2),
        "correctness_shape": (SIZE, 1),
        "dtype": torch.float32,
        "repeats": 2,
        "warmup": 1,
        "fixtures": FIXTURES if FIXTURES.is_dir() else None,
        "implementations": ("eager", "sdpa"),
        **overrides,
    }
    return gpu.GpuOptions(**values)


@pytest.fixture(scope="module")
def report() -> dict:
    saved = []
    results = gpu.run_report(options(), log=lambda message: None, save=lambda r: saved.append(dict(r["steps"])))
    results["saved_steps"] = saved
    return results


def test_every_step_runs_and_the_document_is_saved_after_each(report: dict) -> None:
    steps = report["steps"]
    assert list(steps) == ["peak", "correctness", "flops", "forward 64x64 batch 2", "training", "flex_attention",
                           "compile"]  # fmt: skip
    assert all(status.startswith("done") for status in steps.values()), steps
    assert [len(s) for s in report["saved_steps"]][:7] == [1, 2, 3, 4, 5, 5, 6]  # paired configs save too


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared fixtures not found at {FIXTURES}")
def test_fixture_rows_reproduce_the_original_implementation(report: dict) -> None:
    assert [row["implementation"] for row in report["fixture"]] == ["eager", "sdpa"]
    for row in report["fixture"]:
        assert row["status"] == "ok" and row["logits_max_abs_diff"] < 1e-5


def test_precision_rows_measure_error_against_float64(report: dict) -> None:
    rows = {(r["implementation"], r["precision"]): r for r in report["precision"]}
    # On the CPU only fp32 weights run: plain, with the TF32 switch (a no-op there) and under bf16 autocast.
    assert set(rows) == {(i, p) for i in ("eager", "sdpa") for p in ("fp32", "fp32+tf32", "bf16 autocast")}
    for implementation in ("eager", "sdpa"):
        exact, autocast = rows[(implementation, "fp32")], rows[(implementation, "bf16 autocast")]
        assert exact["relative_error"] < 1e-5 and exact["argmax_agreement"] == 1.0
        assert 1e-4 < autocast["relative_error"] < 0.1  # bf16 rounding is visible, and bounded
        assert 0.5 < autocast["argmax_agreement"] <= 1.0


def test_randomise_leaves_no_zero_initialised_weight() -> None:
    model = gpu.randomise_(gpu.build_model(segret("sdpa"), torch.device("cpu"), torch.float32))
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point():
            assert not bool((tensor == 0).all()) and not bool((tensor == 1).all()), name


def test_timings_carry_utilisation_memory_and_sdpa_ratios(report: dict) -> None:
    rows = {(r["phase"], r["model"]): r for r in report["timings"]}
    forward = rows[("throughput", "segret-test/eager")]
    gflops = next(r for r in report["static"] if r["model"] == "segret-test")["gflops_per_image"]["64x64"]
    assert forward["achieved_tflops"] == pytest.approx(gflops * forward["images_per_s"] / 1e3)
    training = rows[("training", "segret-test/sdpa")]
    assert training["achieved_tflops"] == pytest.approx(3 * gflops * training["images_per_s"] / 1e3)
    assert forward["weights_mib"] > 0 and forward["peak_above_resident_mib"] is None  # CUDA-only measurement
    assert rows[("flex_attention", "segret-test/sdpa")]["ratio_vs_sdpa_paired"] == 1.0
    assert rows[("flex_attention", "segret-test/eager")]["ratio_vs_sdpa_paired"] > 0
    assert rows[("throughput", "segret-test/sdpa+channels_last")]["ratio_vs_sdpa_paired"] > 0


def test_utilisation_against_each_peak() -> None:
    row = {"family": "segret", "name": "t", "size": "8x8", "phase": "throughput", "images_per_s": 100.0}
    gpu.add_utilisation([row], {("segret-t", "8x8"): 5.0}, {"datasheet": 1000.0, "measured": 500.0})
    assert row["achieved_tflops"] == 0.5
    assert row["utilisation_datasheet"] == 0.0005 and row["utilisation_measured"] == 0.001


def test_a_spent_budget_skips_steps_but_still_writes_the_document(tmp_path: Path) -> None:
    results = gpu.run_report(options(budget_s=0.0), log=lambda m: None, save=lambda r: None)
    assert set(results["steps"].values()) == {"skipped: time budget spent"}
    json_path, markdown_path = gpu.write_gpu_results(results, tmp_path, "budget")
    assert json.loads(json_path.read_text())["steps"]["peak"] == "skipped: time budget spent"
    assert "flex_attention: skipped" in markdown_path.read_text()


def test_markdown_has_every_section(report: dict, tmp_path: Path) -> None:
    _, markdown_path = gpu.write_gpu_results(report, tmp_path, "smoke")
    markdown = markdown_path.read_text()
    for heading in ("## Correctness", "### Randomised network", "## Parameters and FLOPs",
                    "### throughput, batch 2 at 64x64", "### training, batch 2 at 64x64",
                    "### flex_attention, batch 2 at 64x64"):  # fmt: skip
        assert heading in markdown


def test_command_line_refuses_mismatched_batches_and_half_precision_on_cpu(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_cli.main(["--device", "cpu", "--dtype", "float32", "--sizes", "64x64", "--batch_sizes", "1", "2"])
    assert "--batch_sizes needs one batch per --sizes entry" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_cli.main(["--device", "cpu"])
    assert "--device cpu runs float32 only" in capsys.readouterr().err



def test_only_the_chosen_steps_run() -> None:
    chosen = ("peak", "flops", "flex_attention")
    results = gpu.run_report(options(steps=chosen), log=lambda m: None, save=lambda r: None)
    assert list(results["steps"]) == list(chosen)
    assert {row["phase"] for row in results["timings"]} == {"flex_attention"} and not results["precision"]
