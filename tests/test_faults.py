"""Faults a user can hit, one test each: every one ends in a single clear message, and nothing is lost,
half-written or silently wrong.

Entry points: the image processor, the converter, `scripts/evaluate.py`, `examples/segment_image.py` and the
training script. Tiny models and datasets from `helpers`; the two tests that need real processes (a run
killed during its final save, two runs into one folder) start them with `subprocess`.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from segret_hf import SegRetImageProcessor
from segret_hf.inference import SegmentationInferencer

from helpers import load_script, save_model_folder, stripes, write_parquet_dataset

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "original_checkpoints"
RMT = FIXTURES / "tiny_a_rmt_imagenet.pth"
MMSEG = FIXTURES / "tiny_a_mmseg.pth"
ARCHITECTURE = FIXTURES / "tiny_a_architecture.json"

convert_script = load_script(REPO / "scripts" / "convert_original_checkpoint.py")
evaluate_script = load_script(REPO / "scripts" / "evaluate.py")
segment_script = load_script(REPO / "examples" / "segment_image.py")

# ---------------------------------------------------------------------------------------------------------
# Image processor
# ---------------------------------------------------------------------------------------------------------


def test_processor_warns_on_float_images_already_in_0_1(caplog: pytest.LogCaptureFixture) -> None:
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    logging.Logger.warning_once.cache_clear()  # the warning is given once per process
    with caplog.at_level(logging.WARNING):
        SegRetImageProcessor()(image, return_tensors="pt")
    assert "do_rescale=False" in caplog.text
    # Told so, the processor gives what the same image in 0-255 gives.
    expected = SegRetImageProcessor()(image * 255, return_tensors="pt")["pixel_values"]
    actual = SegRetImageProcessor()(image, do_rescale=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16])
def test_processor_reads_8bit_values_in_pil_integer_modes_as_8bit(dtype: type) -> None:
    grey = np.random.default_rng(1).integers(0, 256, (16, 16)).astype(np.uint8)
    image = PIL.Image.fromarray(grey.astype(dtype))
    assert image.mode in ("I", "I;16")
    reference = SegRetImageProcessor()(PIL.Image.fromarray(grey, mode="L"), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(SegRetImageProcessor()(image, return_tensors="pt")["pixel_values"], reference)


def test_processor_refuses_pil_integer_values_beyond_16_bits() -> None:
    image = PIL.Image.fromarray(np.full((4, 4), 70000, dtype=np.int32))
    with pytest.raises(ValueError, match=r"mode 'I' holds values in \[70000, 70000\]"):
        SegRetImageProcessor()(image)


@pytest.mark.parametrize(
    "images",
    [np.zeros((0, 0, 3), np.uint8), torch.zeros(3, 0, 8), [np.zeros((8, 0), np.uint8)]],
    ids=["array", "tensor", "list"],
)
def test_processor_refuses_images_without_pixels(images: object) -> None:
    with pytest.raises(ValueError, match="has no pixels"):
        SegRetImageProcessor()(images)


@pytest.mark.parametrize("images", [[], (), np.zeros((0, 8, 8, 3), np.uint8)], ids=["list", "tuple", "batch"])
def test_processor_refuses_an_empty_batch(images: object) -> None:
    with pytest.raises(ValueError, match="No images given"):
        SegRetImageProcessor()(images)


# ---------------------------------------------------------------------------------------------------------
# Converter
# ---------------------------------------------------------------------------------------------------------

needs_fixtures = pytest.mark.skipif(
    not RMT.is_file(), reason=f"original-checkpoint fixtures not found at {FIXTURES} (shared folder absent)"
)


def _convert(*args: str | Path) -> int:
    return convert_script.main([str(arg) for arg in args])


def _damaged_copies(folder: Path, source: Path) -> dict[str, Path]:
    data = source.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside a tensor's bytes: only the checksum notices
    copies = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "flipped byte": bytes(flipped),
        "random bytes": np.random.default_rng(0).integers(1, 127, 4096, dtype=np.uint8).tobytes(),
    }
    for name, content in copies.items():
        (folder / f"{name.replace(' ', '_')}.pth").write_bytes(content)
    return {name: folder / f"{name.replace(' ', '_')}.pth" for name in copies}


DAMAGE_MESSAGES = {
    "empty": "is empty (0 bytes)",
    "truncated": "is truncated or corrupt",
    "flipped byte": "is corrupt: its part",
    "random bytes": "is not a PyTorch checkpoint",
}


@needs_fixtures
def test_converter_names_a_damaged_checkpoint_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, path in _damaged_copies(tmp_path, RMT).items():
        status = _convert("--checkpoint", path, "--variant", "tiny", "--num_labels", "3", "--output_dir", tmp_path / "out")
        error = capsys.readouterr().err
        assert status == 1, name
        assert f"error: {path} {DAMAGE_MESSAGES[name]}" in error, (name, error)
        assert "Traceback" not in error and "objects other than tensors" not in error
        assert not (tmp_path / "out").exists()


@needs_fixtures
def test_converter_explicit_classes_replace_the_architecture_default_for_a_backbone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        status = _convert(
            "--checkpoint", RMT, "--architecture", ARCHITECTURE, "--num_labels", "3", "--output_dir", tmp_path / "out"
        )
    assert status == 0, capsys.readouterr().err
    assert len(json.loads((tmp_path / "out" / "config.json").read_text())["id2label"]) == 3
    assert "num_classes (5) is not used" in caplog.text
    # A trained classifier still decides: the mmseg checkpoint has 5 classes.
    status = _convert(
        "--checkpoint", MMSEG, "--architecture", ARCHITECTURE, "--num_labels", "3", "--output_dir", tmp_path / "mm"
    )
    assert status == 1 and "Conflicting numbers of classes" in capsys.readouterr().err


@needs_fixtures
@pytest.mark.parametrize("flag", ["--id2label", "--architecture"])
def test_converter_names_a_broken_json_file(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"0": "sky",\n')
    args = ["--checkpoint", RMT, "--output_dir", tmp_path / "out", flag, broken]
    args += ["--variant", "tiny"] if flag == "--id2label" else ["--num_labels", "3"]
    assert _convert(*args) == 1
    error = capsys.readouterr().err
    assert f"{flag} {broken} is not valid JSON" in error and "line 2" in error


# ---------------------------------------------------------------------------------------------------------
# scripts/evaluate.py and examples/segment_image.py
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(save_model_folder(tmp_path_factory.mktemp("model"), {0: "a", 1: "b", 2: "c"}))


@pytest.fixture(scope="module")
def stripes_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet_dataset(
        tmp_path_factory.mktemp("stripes"), [stripes()] * 2, splits=("validation",), id2label={0: "a", 1: "b", 2: "c"}
    )


@pytest.fixture
def no_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a model is loaded: the checks must come before any work."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(SegmentationInferencer, "from_pretrained", refuse)


def test_evaluate_refuses_an_output_file_that_is_a_folder_before_evaluating(
    tmp_path: Path, stripes_dataset: Path, model_folder: Path, no_inference: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(model_folder), "--dataset_name", str(stripes_dataset), "--no_progress"]
    assert evaluate_script.main([*args, "--output_file", str(tmp_path)]) == 2
    assert f"error: --output_file {str(tmp_path)!r} is a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert evaluate_script.main([*args, "--output_file", str(tmp_path / "file" / "results.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_evaluate_names_a_truncated_model_file(
    tmp_path: Path, stripes_dataset: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = shutil.copytree(model_folder, tmp_path / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    status = evaluate_script.main(["--model", str(model), "--dataset_name", str(stripes_dataset), "--no_progress"])
    error = capsys.readouterr().err
    assert status == 2 and f"error: {weights} is truncated or corrupt" in error and "Traceback" not in error


def test_segment_image_checks_the_output_before_inference(
    tmp_path: Path, model_folder: Path, no_inference: None, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "photo.png"
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for output, message in [
        (tmp_path / "photo.xyz", "unknown image file extension '.xyz'"),
        (tmp_path / "photo", "no image file extension"),
        (tmp_path, "is a folder"),
    ]:
        assert segment_script.main([str(image), "--model", str(model_folder), "--output", str(output)]) == 2
        assert message in capsys.readouterr().err


def test_segment_image_creates_a_missing_output_folder(tmp_path: Path, model_folder: Path) -> None:
    image = tmp_path / "photo.png"
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    output = tmp_path / "new" / "folder" / "photo.jpg"
    assert segment_script.main([str(image), "--model", str(model_folder), "--output", str(output)]) == 0
    assert PIL.Image.open(output).format == "JPEG"
