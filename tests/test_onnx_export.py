"""ONNX export (segret_hf.onnx_export, segret-export-onnx) and onnxruntime inference (segret_hf.onnx_inference).

Exports trace a ~20k-parameter SegRet; one export takes 10-20 s on 2 CPU cores, so the tests that need one share a
module-level export and are marked slow. Refusals (flex_attention, existing output, bad sizes) happen before any
tracing and run in the quick loop. Tests that run graphs need the `onnx` extra and are skipped without it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation, SegRetImageProcessor
from segret_hf.inference import SegmentationInferencer
from segret_hf.modeling_segret import SegRetFusedDecodeHead
from segret_hf.cli.export_onnx import main
from segret_hf.onnx_export import MIN_SIDE, OnnxExportError, check_attn_implementation, export_onnx

from helpers import TINY_ARCHITECTURE, load_script, save_tiny_model

ID2LABEL = {0: "sky", 1: "road", 2: "tree", 3: "car"}
APP = Path(__file__).resolve().parents[1] / "examples" / "demo_app" / "app.py"


def _require_onnx_packages() -> None:
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason=f"{package} is not installed (pip install -e '.[onnx]')")


def _model_folder(folder: Path) -> Path:
    save_tiny_model(folder, ID2LABEL)
    SegRetImageProcessor(size={"height": 96, "width": 128}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """The CLI's export (verified) of a tiny saved SegRet: paths, exit status and what it printed."""
    _require_onnx_packages()
    root = tmp_path_factory.mktemp("onnx")
    model_folder = _model_folder(root / "model")
    output = root / "export" / "model.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["--model", str(model_folder), "--output", str(output)])
    return {"model": model_folder, "output": output, "status": status, "printed": printed.getvalue().splitlines()}


def _pytorch_model(folder: Path) -> SegRetForSemanticSegmentation:
    return SegRetForSemanticSegmentation.from_pretrained(folder).eval()


# ------------------------------------------------------------------------------------------------------
# Refusals: before any tracing
# ------------------------------------------------------------------------------------------------------


def test_flex_attention_is_refused_with_the_fix() -> None:
    with pytest.raises(OnnxExportError, match="flex_attention cannot be exported.*sdpa"):
        check_attn_implementation("flex_attention")
    model = SegRetForSemanticSegmentation(SegRetConfig(**TINY_ARCHITECTURE, num_labels=3))
    model.set_attn_implementation("flex_attention")
    with pytest.raises(OnnxExportError, match="sdpa"):
        export_onnx(model, "unused.onnx", SegRetImageProcessor())


def test_cli_refuses_flex_attention_and_writes_nothing(tmp_path, capsys) -> None:
    output = tmp_path / "export" / "model.onnx"
    status = main(["--model", "unused", "--output", str(output), "--attn_implementation", "flex_attention"])
    assert status == 2
    assert "flex_attention cannot be exported" in capsys.readouterr().err
    assert not output.parent.exists()


def test_existing_output_is_refused_without_overwrite(tmp_path, capsys) -> None:
    output = tmp_path / "model.onnx"
    output.write_bytes(b"previous export")
    assert main(["--model", "unused", "--output", str(output)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"previous export"


@pytest.mark.parametrize(
    "flags, message",
    [(["--output", "model.bin"], "must end in .onnx"), (["--output", "m.onnx", "--max_side", "100"], "at least 128")],
)
def test_bad_output_or_size_is_refused(tmp_path, capsys, monkeypatch, flags, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--model", "unused", *flags]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------
# An export and what it serves
# ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_writes_graph_with_config_and_processor_beside_it(exported) -> None:
    assert exported["status"] == 0
    folder = exported["output"].parent
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.onnx", "preprocessor_config.json"]
    config = json.loads((folder / "config.json").read_text())
    assert {int(k): v for k, v in config["id2label"].items()} == ID2LABEL
    assert SegRetImageProcessor.from_pretrained(folder).to_dict() == (
        SegRetImageProcessor.from_pretrained(exported["model"]).to_dict()
    )
    checks = [line for line in exported["printed"] if "max |difference|" in line]
    assert [line.split(":")[0] for line in checks] == ["1x3x128x128", "1x3x200x328", "1x3x512x512", "2x3x256x384"]
    assert not any("FAILED" in line for line in checks)


@pytest.mark.slow
def test_exported_graph_takes_any_batch_and_size(exported) -> None:
    import onnx
    import onnxruntime

    graph = onnx.load(str(exported["output"]))
    dims = [dim.dim_param or dim.dim_value for dim in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert metadata == {"segret.min_side": str(MIN_SIDE), "segret.max_side": "4096"}
    # Retention loops over chunks inside the graph: one Scan per attention pass (decomposed stages make two).
    retention_passes = sum(2 if d else 1 for d in TINY_ARCHITECTURE["decomposed_retention"])
    assert [node.op_type for node in graph.graph.node].count("Scan") == retention_passes

    model = _pytorch_model(exported["model"])
    session = onnxruntime.InferenceSession(str(exported["output"]), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in [(1, 3, MIN_SIDE, MIN_SIDE), (3, 3, 97, 131), (2, 3, 300, 200), (1, 3, 640, 96)]:
        pixel_values = torch.randn(shape, generator=generator)
        with torch.inference_mode():
            reference = model(pixel_values=pixel_values).logits.numpy()
        (logits,) = session.run(["logits"], {"pixel_values": pixel_values.numpy()})
        assert logits.shape == reference.shape
        np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnx_segmenter_predicts_what_pytorch_predicts(exported) -> None:
    from segret_hf.onnx_inference import OnnxSegmenter

    segmenter = OnnxSegmenter.from_pretrained(exported["output"].parent)
    assert segmenter.id2label == ID2LABEL
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)) for size in [(70, 90, 3), (120, 64, 3)]]
    reference = SegmentationInferencer.from_pretrained(str(exported["model"])).predict(images)
    for onnx_map, torch_map, image in zip(segmenter.predict(images), reference, images):
        assert onnx_map.shape == (image.height, image.width)
        assert torch.equal(onnx_map, torch_map)
    with pytest.raises(ValueError, match="at least 64 pixels"):
        segmenter.logits(np.zeros((1, 3, 32, 96), dtype=np.float32))


@pytest.mark.slow
def test_demo_app_serves_an_onnx_export(exported) -> None:
    app = load_script(APP)
    onnx_segmenter = app.load_segmenter(str(exported["output"]))
    torch_segmenter = app.load_segmenter(str(exported["model"]))
    image = PIL.Image.fromarray(np.random.default_rng(2).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    assert app.segment(onnx_segmenter, image)["legend"] == app.segment(torch_segmenter, image)["legend"]


@pytest.mark.slow
def test_failed_verification_exits_1_and_leaves_nothing(tmp_path, monkeypatch, capsys) -> None:
    """A graph that computes something else than PyTorch (here: logits + 1 only while tracing) is not written."""
    _require_onnx_packages()
    model_folder = _model_folder(tmp_path / "model")
    original = SegRetFusedDecodeHead.forward  # the head an eval-mode (fused) model runs

    def shifted_when_exported(self, features):
        logits = original(self, features)
        return logits + 1 if torch.compiler.is_exporting() else logits

    monkeypatch.setattr(SegRetFusedDecodeHead, "forward", shifted_when_exported)
    output = tmp_path / "export" / "model.onnx"
    assert main(["--model", str(model_folder), "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "does not reproduce the PyTorch model" in err
    assert list(output.parent.iterdir()) == []  # no graph, no side files, no temporary file


@pytest.mark.slow
def test_float16_export_is_verified_against_float32(tmp_path) -> None:
    _require_onnx_packages()
    from segret_hf.onnx_inference import OnnxSegmenter

    model_folder = _model_folder(tmp_path / "model")
    model = _pytorch_model(model_folder)
    output = tmp_path / "half" / "model.onnx"
    checks = export_onnx(model, output, SegRetImageProcessor.from_pretrained(model_folder), dtype="float16")
    assert checks and all(check.passed for check in checks)
    assert all(check.argmax_agreement > 0.99 for check in checks)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left as it was
    segmenter = OnnxSegmenter.from_pretrained(output)
    assert segmenter.input_dtype == np.float16
    assert segmenter.logits(np.zeros((1, 3, 64, 64), dtype=np.float32)).dtype == np.float32


@pytest.mark.slow
def test_benchmark_memory_probe_runs_an_export_in_a_subprocess(exported) -> None:
    """The probe behind benchmarks/onnx_memory.py: figures for the graph on onnxruntime, never a timing check."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from segret_bench.memory import probe_onnx_memory

    result = probe_onnx_memory(exported["output"], 96, 128, 1, timeout_s=120, memory_limit_gib=16)
    assert result.status == "ok" and result.metric == "peak RSS (VmHWM)"
    assert result.peak_mib >= result.after_build_mib > 0
    assert result.steady_call_s is not None
