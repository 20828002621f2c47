"""Dataset evaluation end to end: scripts/evaluate.py on tiny Hub-layout parquet datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
from transformers import SegformerImageProcessor

from segret_hf.data.label_maps import dataset_id2label, reduce_labels
from segret_hf.data.label_sets import CITYSCAPES
from segret_hf.data.loading import load_split, resolve_columns
from segret_hf.data.presets import get_preset
from segret_hf.evaluation import EvaluationData, EvaluationOptions, check_label_compatibility, evaluate
from segret_hf.image_processing_segret import SegRetImageProcessor
from segret_hf.inference import SegmentationInferencer, size_divisor_override

from helpers import load_script, save_model_folder, write_parquet_dataset

NUM_LABELS = 5
NUM_CITYSCAPES_CLASSES = 19
SIZES = [(40, 56), (30, 70), (36, 36)]
QUIET = EvaluationOptions(progress=False)
ROOT = Path(__file__).resolve().parents[1]

evaluate_script = load_script(ROOT / "scripts" / "evaluate.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_model_folder(tmp_path_factory.mktemp("model"), {i: f"class{i}" for i in range(NUM_LABELS)})


def _images() -> list[np.ndarray]:
    rng = np.random.RandomState(0)
    return [
        np.asarray(
            PIL.Image.fromarray(rng.randint(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)).resize((w, h))
        )
        for h, w in SIZES
    ]


def write_dataset(
    root: Path,
    labels: list[np.ndarray],
    images: list[np.ndarray | bytes] | None = None,
    id2label: dict[int, str] | None = None,
) -> str:
    """A Hub-layout dataset folder with a validation split only; the images default to `_images()`."""
    images = images if images is not None else _images()
    return str(write_parquet_dataset(root, labels, images, splits=("validation",), id2label=id2label))


@pytest.fixture(scope="module")
def predictions(model_dir: str) -> list[np.ndarray]:
    """The model's own single-scale predictions on `_images()`."""
    inferencer = SegmentationInferencer.from_pretrained(model_dir)
    return [p.numpy() for p in inferencer.predict([PIL.Image.fromarray(image) for image in _images()])]


@pytest.fixture(scope="module")
def perfect_dataset(tmp_path_factory: pytest.TempPathFactory, predictions: list[np.ndarray]) -> str:
    """Labels equal to the model's predictions, except an ignored (255) block in the first image."""
    labels = [p.copy() for p in predictions]
    labels[0][:10, :10] = (labels[0][:10, :10] + 1) % NUM_LABELS  # wrong labels ...
    labels[0][:10, :10] = 255  # ... that are ignored
    id2label = {i: f"class{i}" for i in range(NUM_LABELS)}
    return write_dataset(tmp_path_factory.mktemp("perfect"), labels, id2label=id2label)


def _run_cli(tmp_path: Path, model_dir: str, dataset: str, *extra: str) -> tuple[int, dict]:
    output = tmp_path / "results.json"
    argv = ["--model", model_dir, "--dataset_name", dataset, "--split", "validation", "--output_file", str(output)]
    status = evaluate_script.main([*argv, "--no_progress", *extra])
    return status, json.loads(output.read_text()) if output.exists() else {}


def test_own_predictions_as_labels_give_miou_one(tmp_path: Path, model_dir: str, perfect_dataset: str) -> None:
    status, results = _run_cli(tmp_path, model_dir, perfect_dataset, "--batch_size", "2")
    assert status == 0
    metrics = results["metrics"]
    assert metrics["mean_iou"] == 1.0 and metrics["overall_accuracy"] == 1.0
    assert sum(iou is not None for iou in metrics["per_category_iou"]) > 1  # several classes present


def test_json_records_model_dataset_protocol_and_count(tmp_path: Path, model_dir: str, perfect_dataset: str) -> None:
    status, results = _run_cli(tmp_path, model_dir, perfect_dataset, "--max_samples", "2", "--multi_scale", "--flip")
    assert status == 0
    assert results["model"] == model_dir
    assert results["dataset"] == {
        "name": perfect_dataset,
        "config": None,
        "revision": None,
        "split": "validation",
        "preset": None,
        "image_column": "image",
        "label_column": "annotation",
        "do_reduce_labels": False,
        "labels": "as stored (train ids)",
        "num_rows": 3,
    }
    protocol = results["protocol"]
    assert protocol["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and protocol["flip"] is True
    assert protocol["mode"] == "whole" and protocol["window"] is None and protocol["resize"] == {"shortest_edge": 32}
    assert results["num_samples"] == 2 and results["failed_samples"] == []
    assert results["metrics"]["class_names"] == [f"class{i}" for i in range(NUM_LABELS)]
    assert set(results["metrics"]) >= {"mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou"}


def test_single_ratio_multi_scale_equals_single_scale(
    tmp_path: Path, model_dir: str, predictions: list[np.ndarray]
) -> None:
    labels = [np.roll(p, 3, axis=1) for p in predictions]  # imperfect labels: mIoU < 1
    dataset = write_dataset(tmp_path / "shifted", labels)
    _, single = _run_cli(tmp_path / "a", model_dir, dataset)
    _, multi = _run_cli(tmp_path / "b", model_dir, dataset, "--multi_scale", "--scales", "1.0")
    assert multi["protocol"]["scales"] == [1.0]
    assert single["metrics"] == multi["metrics"] and single["metrics"]["mean_iou"] < 1.0


def test_sliding_window_and_saved_pictures(tmp_path: Path, model_dir: str, perfect_dataset: str) -> None:
    pictures = tmp_path / "pictures"
    status, results = _run_cli(
        tmp_path, model_dir, perfect_dataset,
        "--sliding_window", "--window", "24", "--stride", "16",
        "--save_predictions", str(pictures), "--save_predictions_count", "2",
    )  # fmt: skip
    assert status == 0
    assert results["protocol"]["mode"] == "slide" and results["protocol"]["window"] == [24, 24]
    assert sorted(p.name for p in pictures.iterdir()) == ["000000.png", "000001.png"]
    assert PIL.Image.open(pictures / "000001.png").size == (3 * 70, 30)  # image | label | prediction


def test_reduce_labels_end_to_end(model_dir: str, predictions: list[np.ndarray], tmp_path: Path) -> None:
    stored = [p + 1 for p in predictions]  # ADE20K convention: 0 = unlabelled, classes from 1
    stored[1][:5] = 0
    dataset = write_dataset(tmp_path / "ade_like", stored)
    report = evaluate(model_dir, EvaluationData(dataset, do_reduce_labels=True), QUIET)
    assert report.metrics["mean_iou"] == 1.0
    with pytest.raises(ValueError, match=r"Sample [0-2] has label values \[5\].*--do_reduce_labels"):
        evaluate(model_dir, EvaluationData(dataset), QUIET)
    assert reduce_labels(np.array([0, 1, 5, 255])).tolist() == [255, 0, 4, 255]


def test_preset_lookup_table_converts_raw_cityscapes_ids(tmp_path: Path) -> None:
    model = save_model_folder(tmp_path / "cityscapes_model", CITYSCAPES.id2label)
    images = [PIL.Image.fromarray(image) for image in _images()]
    predictions = [p.numpy() for p in SegmentationInferencer.from_pretrained(model).predict(images)]
    train_to_raw = np.zeros(256, np.uint8)
    for raw, train in sorted(CITYSCAPES.raw_to_train_id.items(), reverse=True):
        if 0 <= raw < 256 and train < NUM_CITYSCAPES_CLASSES:
            train_to_raw[train] = raw
    raw_labels = [train_to_raw[p] for p in predictions]
    raw_labels[0][:6] = 0  # "unlabeled" -> ignored
    dataset = write_dataset(tmp_path / "raw_ids", raw_labels)
    report = evaluate(model, EvaluationData(dataset, dataset_preset="cityscapes"), QUIET)
    assert report.metrics["mean_iou"] == 1.0
    assert report.metadata["dataset"]["labels"] == "preset lookup table (raw ids -> train ids)"
    with pytest.raises(ValueError, match=r"outside the model's class ids \[0, 18\].*read as stored"):
        evaluate(model, EvaluationData(dataset, dataset_preset="cityscapes", labels_are_train_ids=True), QUIET)


def test_unreadable_image_is_reported_with_its_index(
    tmp_path: Path, model_dir: str, predictions: list[np.ndarray]
) -> None:
    images = _images()
    images[1] = b"definitely not a png"
    dataset = write_dataset(tmp_path / "broken", predictions, images=images)
    status, results = _run_cli(tmp_path, model_dir, dataset)
    assert status == 1
    assert results["num_samples"] == 2 and results["metrics"]["mean_iou"] == 1.0
    [failure] = results["failed_samples"]
    assert failure["index"] == 1 and failure["column"] == "image" and "UnidentifiedImageError" in failure["error"]


def test_class_count_mismatch_is_refused(tmp_path: Path, model_dir: str, predictions: list[np.ndarray]) -> None:
    dataset = write_dataset(tmp_path / "four", predictions, id2label={i: f"c{i}" for i in range(4)})
    with pytest.raises(ValueError, match="predicts 5 classes but the dataset's id2label has 4"):
        evaluate(model_dir, EvaluationData(dataset), QUIET)
    with pytest.raises(ValueError, match="predicts 5 classes but dataset preset 'cityscapes' has 19"):
        check_label_compatibility({i: str(i) for i in range(NUM_LABELS)}, preset=get_preset("cityscapes"))


def test_unknown_split_and_column_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, model_dir: str, perfect_dataset: str
) -> None:
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        evaluate(model_dir, EvaluationData(perfect_dataset, split="test"), QUIET)
    with pytest.raises(ValueError, match="Unknown label column 'segmentation'.*'annotation'"):
        evaluate(model_dir, EvaluationData(perfect_dataset, label_column_name="segmentation"), QUIET)
    status, _ = _run_cli(tmp_path, model_dir, perfect_dataset, "--image_column_name", "pixels")
    assert status == 2 and "Unknown image column 'pixels'" in capsys.readouterr().err


def test_misaligned_and_colour_labels_are_refused(tmp_path: Path, model_dir: str) -> None:
    misaligned = write_dataset(tmp_path / "misaligned", [np.zeros((h + 1, w), np.uint8) for h, w in SIZES])
    with pytest.raises(ValueError, match=r"Sample 0: the image is \(40, 56\).*\(41, 56\)"):
        evaluate(model_dir, EvaluationData(misaligned), QUIET)
    colour = write_dataset(tmp_path / "colour", [np.zeros((h, w, 3), np.uint8) for h, w in SIZES])
    with pytest.raises(ValueError, match="label of sample 0 is a 'RGB' image"):
        evaluate(model_dir, EvaluationData(colour), QUIET)


def test_save_to_disk_folders_and_column_candidates(tmp_path: Path, perfect_dataset: str) -> None:
    split = load_split(perfect_dataset, "validation")
    datasets.DatasetDict({"validation": split}).save_to_disk(str(tmp_path / "saved"))
    reloaded = load_split(str(tmp_path / "saved"), "validation")
    assert reloaded.num_rows == 3 and dataset_id2label(str(tmp_path / "saved"), reloaded, "annotation") is None
    with pytest.raises(ValueError, match=r"Unknown split 'train'.*\['validation'\]"):
        load_split(str(tmp_path / "saved"), "train")
    assert resolve_columns(["img", "semantic_segmentation"], preset=get_preset("cityscapes")) == (
        "img",
        "semantic_segmentation",
    )
    with pytest.raises(ValueError, match="Found no label column"):
        resolve_columns(["image", "caption"])


@pytest.fixture(scope="module")
def aligned_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test model saved with mmseg's AlignedResize test protocol (size_divisor 32)."""
    folder = save_model_folder(tmp_path_factory.mktemp("aligned"), {i: f"class{i}" for i in range(NUM_LABELS)})
    SegRetImageProcessor(size={"shortest_edge": 32}, size_divisor=32).save_pretrained(folder)
    return folder


def test_size_divisor_comes_from_the_model_unless_overridden(
    tmp_path: Path, capsys: pytest.CaptureFixture, model_dir: str, aligned_model_dir: str, perfect_dataset: str
) -> None:
    cases = [
        (model_dir, (), None),
        (aligned_model_dir, (), 32),
        (aligned_model_dir, ("--size_divisor", "0"), None),
        (model_dir, ("--size_divisor", "64", "--multi_scale"), 64),
    ]
    for index, (model, flags, expected) in enumerate(cases):
        status, results = _run_cli(tmp_path / str(index), model, perfect_dataset, "--max_samples", "1", *flags)
        assert status == 0 and results["protocol"]["size_divisor"] == expected
    status, _ = _run_cli(tmp_path, model_dir, perfect_dataset, "--size_divisor", "-32")
    assert status == 2 and "size_divisor must be a non-negative integer" in capsys.readouterr().err


def test_size_divisor_precedence_flag_then_preset_then_model() -> None:
    ade20k, cityscapes = get_preset("ade20k"), get_preset("cityscapes")
    assert size_divisor_override(None) == {}  # the model's processor config decides
    assert size_divisor_override(None, ade20k) == {"size_divisor": 32}
    assert size_divisor_override(None, get_preset("coco-stuff-10k")) == {"size_divisor": 32}
    assert size_divisor_override(None, cityscapes) == {"size_divisor": None}
    assert size_divisor_override(0, ade20k) == {"size_divisor": None}
    assert size_divisor_override(16, cityscapes) == {"size_divisor": 16}
    with pytest.raises(ValueError, match="non-negative integer"):
        size_divisor_override(-32)


def test_size_divisor_needs_a_processor_that_supports_it(tmp_path: Path, model_dir: str, perfect_dataset: str) -> None:
    segformer_processed = tmp_path / "segformer_processor"
    shutil.copytree(model_dir, segformer_processed)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(segformer_processed)
    aligned = EvaluationOptions(size_divisor=32, progress=False)
    with pytest.raises(ValueError, match="SegformerImageProcessor has no size_divisor.*--size_divisor 0"):
        evaluate(str(segformer_processed), EvaluationData(perfect_dataset), aligned)
    options = EvaluationOptions(size_divisor=0, progress=False)
    report = evaluate(str(segformer_processed), EvaluationData(perfect_dataset, max_samples=1), options)
    assert report.metadata["protocol"]["size_divisor"] is None
