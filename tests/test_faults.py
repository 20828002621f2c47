"""Faults a user can hit, one test each: every one ends in a single clear message, and nothing is lost,
half-written or silently wrong.

Entry points: the image processor, the converter, `scripts/evaluate.py`, `examples/segment_image.py` and the
training script. Tiny models and datasets from `helpers`; the two tests that need real processes (a run
killed during its final save, two runs into one folder) start them with `subprocess`.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Image

from segret_hf import SegRetForSemanticSegmentation, SegRetImageProcessor
from segret_hf.inference import SegmentationInferencer
from segret_hf.training.output_lock import OutputLockError
from segret_hf.training.run import cli as train_cli
from segret_hf.training.run import main as train_main

from helpers import load_script, png_bytes, save_model_folder, save_tiny_model, stripes, write_parquet_dataset

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
        args = ["--checkpoint", path, "--variant", "tiny", "--num_labels", "3", "--output_dir", tmp_path / "out"]
        status = _convert(*args)
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


# ---------------------------------------------------------------------------------------------------------
# Training (scripts/train.py, segret-train)
# ---------------------------------------------------------------------------------------------------------

STRIPE_CLASSES = {0: "a", 1: "b", 2: "c"}
KILL_IN_FINAL_SAVE = """
import os, signal, sys
from pathlib import Path
from segret_hf.image_processing_segret import SegRetImageProcessor
from segret_hf.training.run import cli
from segret_hf.training.saving import STAGING_NAME

save = SegRetImageProcessor.save_pretrained

def save_or_die(self, folder, *args, **kwargs):
    if Path(folder).name == STAGING_NAME:  # the final save: the weights are written, the rest is not
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, folder, *args, **kwargs)

SegRetImageProcessor.save_pretrained = save_or_die
sys.exit(cli(sys.argv[1:]))
"""


def _encoded(array: np.ndarray) -> dict[str, object]:
    return {"bytes": png_bytes(array), "path": None}


def write_train_split(folder: Path, rows: int = 6, bad: dict[int, str] | None = None) -> Path:
    """A train-only Hub-layout dataset of stripe maps; `bad` maps rows to the column whose bytes are garbage."""
    rng = np.random.default_rng(0)
    columns: dict[str, list[dict[str, object]]] = {"image": [], "annotation": []}
    for row in range(rows):
        label = stripes(24, 32)
        columns["image"].append(_encoded(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)))
        columns["annotation"].append(_encoded(label))
        if bad and row in bad:
            columns[bad[row]][row] = {"bytes": b"not an image at all", "path": None}
    table = datasets.Dataset.from_dict(columns, features=datasets.Features(image=Image(), annotation=Image()))
    (folder / "data").mkdir(parents=True)
    table.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    (folder / "id2label.json").write_text(json.dumps({str(k): v for k, v in STRIPE_CLASSES.items()}))
    return folder


@pytest.fixture(scope="module")
def stripe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("stripe_model"), STRIPE_CLASSES)


@pytest.fixture(scope="module")
def train_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_train_split(tmp_path_factory.mktemp("train_split"))


def train_args(dataset: Path, model: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--dataset_name", str(dataset), "--model_name_or_path", str(model), "--output_dir", str(output),
        "--crop_size", "32", "--per_device_train_batch_size", "2", "--max_steps", "2", "--save_steps", "2",
        "--report_to", "none", "--seed", "0", "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
        "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, train_split: Path, stripe_model: Path) -> Path:
    """A completed two-step run with its checkpoint-2, to resume from."""
    output = tmp_path_factory.mktemp("finished") / "run"
    train_main(train_args(train_split, stripe_model, output))
    return output


def test_train_names_an_unreadable_row_beyond_the_checked_ones(
    tmp_path: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_train_split(tmp_path / "data", rows=6, bad={3: "annotation"})
    output = tmp_path / "out"
    status = train_cli(train_args(dataset, stripe_model, output, "--rows_to_check", "2", "--max_steps", "3"))
    error = capsys.readouterr().err
    assert status == 2, error
    assert f"error: dataset {str(dataset)!r}, split 'train', column 'annotation', row 3: cannot identify image" in error
    assert "--skip_unreadable_samples" in error and "Traceback" not in error


def test_train_skips_unreadable_rows_when_asked_and_records_them(
    tmp_path: Path, stripe_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = write_train_split(tmp_path / "data", rows=6, bad={2: "image", 4: "annotation"})
    output = tmp_path / "out"
    args = train_args(dataset, stripe_model, output, "--rows_to_check", "2", "--max_steps", "3", "--save_steps", "9")
    with caplog.at_level(logging.WARNING):
        train_main([*args, "--skip_unreadable_samples"])
    assert "column 'image', row 2" in caplog.text and "column 'annotation', row 4" in caplog.text
    assert "unreadable training rows skipped | 2 (rows 2, 4)" in (output / "README.md").read_text()


def test_train_refuses_a_broken_id2label_file_naming_it(
    tmp_path: Path, train_split: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "classes.json"
    broken.write_text('{"0": "a",\n')
    status = train_cli(train_args(train_split, stripe_model, tmp_path / "out", "--id2label", str(broken)))
    error = capsys.readouterr().err
    assert status == 2 and f"--id2label {broken} is not valid JSON" in error and "line 2" in error
    assert not (tmp_path / "out").exists()


def test_train_names_an_empty_split(tmp_path: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = write_train_split(tmp_path / "data", rows=0)
    assert train_cli(train_args(dataset, stripe_model, tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert "Split 'train' of dataset" in error and "is empty" in error


@pytest.mark.parametrize("rows", [3, 5])
def test_train_never_builds_a_batch_of_one(rows: int, tmp_path: Path, stripe_model: Path) -> None:
    """Batches of 2 over 3 or 5 rows would end with one sample: at a 32-pixel crop BatchNorm then fails."""
    dataset = write_train_split(tmp_path / "data", rows=rows)
    train_main(train_args(dataset, stripe_model, tmp_path / "out", "--max_steps", "-1", "--num_train_epochs", "2"))
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 * (rows // 2)


def test_train_refuses_a_single_row(tmp_path: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = write_train_split(tmp_path / "data", rows=1)
    assert train_cli(train_args(dataset, stripe_model, tmp_path / "out")) == 2
    assert "a batch needs at least 2 samples" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _damage(checkpoint: Path, name: str) -> Path:
    path = checkpoint / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state.pth"])
def test_resume_names_a_damaged_checkpoint_file(
    name: str,
    tmp_path: Path,
    finished_run: Path,
    train_split: Path,
    stripe_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = shutil.copytree(finished_run / "checkpoint-2", tmp_path / "checkpoint-2")
    damaged = _damage(checkpoint, name)
    output = tmp_path / "out"
    args = train_args(train_split, stripe_model, output, "--resume_from_checkpoint", str(checkpoint))
    assert train_cli(args) == 2
    error = capsys.readouterr().err
    assert f"Cannot resume from {str(checkpoint)!r}" in error and str(damaged) in error, error
    assert "Traceback" not in error and not output.exists()


def test_resume_refuses_a_checkpoint_of_another_model(
    tmp_path: Path, finished_run: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = {**STRIPE_CLASSES, 3: "d"}
    labels = [stripes(num_classes=4)] * 4
    dataset = write_parquet_dataset(tmp_path / "data", labels, splits=("train",), id2label=classes)
    output = tmp_path / "out"
    args = train_args(
        dataset, stripe_model, output, "--resume_from_checkpoint", str(finished_run / "checkpoint-2")
    )
    assert train_cli(args) == 2
    error = capsys.readouterr().err
    assert "written by another model" in error and "num_labels 3 (checkpoint) vs 4 (this run)" in error, error
    assert not output.exists()


def test_full_disk_during_a_checkpoint_is_named(
    tmp_path: Path, train_split: Path, stripe_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save

    def full_disk(obj: object, path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith("optimizer.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 470")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    output = tmp_path / "out"
    with pytest.raises(OSError, match="No space left on the device while writing checkpoint checkpoint-2") as caught:
        train_main(train_args(train_split, stripe_model, output))
    assert caught.value.errno == errno.ENOSPC and str(output / "checkpoint-2") in str(caught.value)
    assert not (output / "checkpoint-2").exists()  # the incomplete checkpoint is not left to be resumed


@pytest.mark.slow
def test_run_killed_during_its_final_save_is_detected_and_resumed(
    tmp_path: Path, train_split: Path, stripe_model: Path
) -> None:
    output = tmp_path / "out"
    args = train_args(train_split, stripe_model, output)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_FINAL_SAVE, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (output / "checkpoint-2").is_dir() and not (output / "config.json").exists()
    with pytest.raises(OSError):  # it does not load as if the run had finished
        SegRetForSemanticSegmentation.from_pretrained(output)

    with pytest.raises(OutputLockError, match="did not finish") as refused:
        train_main(args)
    assert f"--resume_from_checkpoint {str(output / 'checkpoint-2')!r}" in str(refused.value)

    train_main([*args, "--resume_from_checkpoint", str(output / "checkpoint-2")])
    assert SegRetForSemanticSegmentation.from_pretrained(output).config.num_labels == 3
    assert (output / "preprocessor_config.json").is_file() and (output / "README.md").is_file()
    assert sorted(path.name for path in output.iterdir() if path.name.startswith(".")) == []


@pytest.mark.slow
def test_two_runs_into_one_folder_one_is_refused(tmp_path: Path, train_split: Path, stripe_model: Path) -> None:
    output = tmp_path / "out"
    script = str(REPO / "scripts" / "train.py")
    runs = {
        steps: subprocess.Popen(
            [sys.executable, script, *train_args(train_split, stripe_model, output, "--max_steps", str(steps))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for steps in (2, 4)
    }
    outcomes = {steps: (run.wait(timeout=300), run.communicate()[1]) for steps, run in runs.items()}
    winners = [steps for steps, (status, _) in outcomes.items() if status == 0]
    assert len(winners) == 1, outcomes
    (loser_status, loser_error), = [outcome for steps, outcome in outcomes.items() if steps != winners[0]]
    assert loser_status == 2 and ("Another training run (pid" in loser_error or "is not empty" in loser_error)
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == winners[0]
    assert not (output / ".segret-train.lock").exists()


@pytest.mark.parametrize("flag", ["--model_name_or_path", "--backbone_checkpoint"])
def test_train_names_a_truncated_starting_model(
    flag: str, tmp_path: Path, train_split: Path, stripe_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = shutil.copytree(stripe_model, tmp_path / "model")
    weights = _damage(model, "model.safetensors")
    args = train_args(train_split, model, tmp_path / "out")
    if flag == "--backbone_checkpoint":
        args[args.index("--model_name_or_path")] = "--backbone_checkpoint"
    assert train_cli(args) == 2
    error = capsys.readouterr().err
    assert f"error: {weights} is truncated or corrupt" in error and not (tmp_path / "out").exists()
