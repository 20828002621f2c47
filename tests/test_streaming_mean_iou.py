"""The `evaluate` module shipped in segret_hf: loads offline from the package, streams pixel counts, and gives
exactly `segret_hf.metrics`' numbers."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest
import torch
from PIL import Image

import segret_hf.streaming_mean_iou
from segret_hf.metrics import SegmentationMetric
from segret_hf.streaming_mean_iou.streaming_mean_iou import pair_counts


@pytest.fixture
def metric(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return evaluate.load(segret_hf.streaming_mean_iou.PATH, cache_dir=str(tmp_path))


def maps(seed: int, shape: tuple[int, ...], num_labels: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    references = rng.integers(0, num_labels, shape)
    predictions = np.where(rng.random(shape) < 0.6, references, rng.integers(0, num_labels, shape))
    references[rng.random(shape) < 0.1] = 255
    return predictions, references


def assert_same(results: dict, expected: dict) -> None:
    assert results.keys() == expected.keys()
    for key, value in expected.items():
        values, got = (value, results[key]) if isinstance(value, list) else ([value], [results[key]])
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(values, got, strict=True)), key


def test_streamed_batches_give_segmentation_metric_numbers(metric) -> None:
    reference = SegmentationMetric(num_labels=6)
    for seed, shape in enumerate([(2, 17, 23), (1, 40, 9), (3, 8, 8)]):
        predictions, references = maps(seed, shape)
        metric.add_batch(predictions=predictions, references=references)
        reference.update(predictions, references)
    single_prediction, single_reference = maps(9, (31, 12))
    metric.add(prediction=single_prediction, reference=single_reference)
    reference.update(single_prediction, single_reference)
    assert_same(metric.compute(num_labels=6, ignore_index=255), reference.compute())


def test_one_shot_compute_with_maps_of_different_sizes_torch_and_pil(metric) -> None:
    (a, a_ref), (b, b_ref) = maps(3, (21, 34)), maps(4, (8, 50))
    predictions = [torch.from_numpy(a), Image.fromarray(b.astype(np.uint8))]
    results = metric.compute(predictions=predictions, references=[a_ref, b_ref], num_labels=6)
    reference = SegmentationMetric(num_labels=6)
    reference.update(a, a_ref)
    reference.update(b, b_ref)
    assert_same(results, reference.compute())


def test_only_pair_counts_are_stored() -> None:
    predictions, references = maps(5, (4, 128, 128), num_labels=3)
    counts = pair_counts(predictions, references)
    assert len(counts["pixels"]) <= 4 * 3  # labels 0-2 and 255 against predictions 0-2, not 65,536 pixels
    assert sum(counts["pixels"]) == predictions.size


def test_classes_absent_from_labels_and_predictions_are_nan(metric) -> None:
    results = metric.compute(predictions=[np.array([[0, 1]])], references=[np.array([[0, 1]])], num_labels=4)
    assert results["per_category_iou"][:2] == [1.0, 1.0] and all(math.isnan(v) for v in results["per_category_iou"][2:])
    assert results["mean_iou"] == 1.0


def test_bad_inputs_are_refused(metric) -> None:
    with pytest.raises(TypeError, match="integer class ids"):
        metric.add_batch(predictions=np.zeros((2, 4, 4), dtype=np.float32), references=np.zeros((2, 4, 4), dtype=int))
    with pytest.raises(ValueError, match="resize the logits to the label size"):
        metric.add_batch(predictions=np.zeros((1, 4, 4), dtype=int), references=np.zeros((1, 4, 5), dtype=int))
    metric.add_batch(predictions=np.full((1, 2, 2), 7), references=np.zeros((1, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="predictions contain the value 7"):
        metric.compute(num_labels=6)
